"""CSV formatting in worker processes, so concurrent exports use every core.

Decoding JSON and formatting rows is the CPU work of a CSV export; in the service's own
process all exports would share one core. Each export checks out a worker (from a pool
like the PDF one) and sends it each fetch's raw message values; the worker decodes,
applies the bad-record rules and formats, and sends back the CSV bytes, which the
service writes to the staged file. While a thread waits for the worker the event loop
is free, and aiokafka fetches the next batch in the background, so the two overlap.
"""

from __future__ import annotations

import functools
import io
from typing import TYPE_CHECKING, Any, NamedTuple

from consumer.runner_core import Tally, log_skip, write_messages
from consumer.workers import WorkerPool, error_reply, raise_reply
from consumer.writers.csv import CsvWriter

if TYPE_CHECKING:
    from collections.abc import Sequence
    from multiprocessing.connection import Connection

    from consumer.runner_core import SourceMessage
    from consumer.structs import ExportOptions
    from consumer.workers import Worker
    from consumer.writers import Sink


class RawMessage(NamedTuple):
    """A source message as it crosses the pipe: its offset and value only."""

    offset: int
    value: bytes | None


def _serve(conn: Connection) -> None:  # pragma: no cover - runs in the worker
    """The worker: one export at a time; replies carry bytes and the running tally."""
    writer: CsvWriter | None = None
    sink = io.BytesIO()
    tally = Tally()
    limits = (0, 0)
    while True:
        try:
            command, *args = conn.recv()
        except EOFError:
            return
        skips: list[tuple[int, str]] = []
        try:
            if command == "begin":
                columns, options, max_bad, max_batch = args
                sink, tally, limits = io.BytesIO(), Tally(), (max_bad, max_batch)
                writer = CsvWriter(columns, options)
                writer.begin(sink)
            elif command == "add" and writer is not None:
                messages = [RawMessage(offset, value) for offset, value in args[0]]
                on_skip = functools.partial(_note_skip, skips)
                write_messages(writer, messages, tally, *limits, on_skip=on_skip)
            elif command == "finish" and writer is not None:
                writer.finish()
                writer = None
            else:
                return
            conn.send(("ok", _take(sink), tally.records, tally.skipped, skips))
        except Exception as exc:  # noqa: BLE001 - the process boundary: report, don't die
            writer = None
            conn.send(error_reply(exc, tally.records, tally.skipped, skips))


def _note_skip(skips: list[tuple[int, str]], offset: int, problem: str) -> None:
    skips.append((offset, problem))


def _take(sink: io.BytesIO) -> bytes:
    data = sink.getvalue()
    sink.seek(0)
    sink.truncate()
    return data


class CsvWorkerPool(WorkerPool):
    def __init__(self, size: int) -> None:
        super().__init__(size, _serve, (), "csv-worker")


class RemoteCsvWriter:
    """A CSV export's writing, done by a worker; the service only moves bytes."""

    def __init__(
        self,
        pool: CsvWorkerPool,
        columns: Sequence[str],
        options: ExportOptions,
        limits: tuple[int, int],
    ) -> None:
        self._pool = pool
        self._columns = tuple(columns)
        self._options = options
        self._limits = limits
        """(max_bad_records, max_batch_bytes)."""
        self._worker: Worker | None = None
        self._sink: Sink | None = None

    def begin(self, sink: Sink, tally: Tally) -> None:
        self._sink = sink
        self._worker = self._pool.checkout()
        self._worker.send("begin", self._columns, self._options, *self._limits)
        self._collect(tally)

    def write_messages(self, messages: Sequence[SourceMessage], tally: Tally) -> None:
        # Waiting for the reply keeps the tally (progress, deadline messages) current;
        # the loop is free meanwhile, and aiokafka fetches the next batch in the background.
        self._checked_out().send("add", [(m.offset, m.value) for m in messages])
        self._collect(tally)

    def finish(self, tally: Tally) -> None:
        self._checked_out().send("finish")
        self._collect(tally)
        assert self._worker is not None  # noqa: S101 - checked out above
        self._pool.checkin(self._worker, reusable=True)
        self._worker = None

    def close(self) -> None:
        """An export not finished is abandoned: its worker is killed, not reused."""
        if self._worker is not None:
            self._pool.checkin(self._worker, reusable=False)
            self._worker = None

    def _checked_out(self) -> Worker:
        if self._worker is None or self._sink is None:
            raise RuntimeError("begin() was not called")
        return self._worker

    def _collect(self, tally: Tally) -> None:
        """Take the oldest reply: write its bytes, follow its tally, log its skips."""
        reply: tuple[Any, ...] = self._checked_out().receive_reply()
        *head, records, skipped, skips = reply
        tally.records, tally.skipped = records, skipped
        for offset, problem in skips:
            log_skip(offset, problem)
        if head[0] == "error":
            raise_reply(tuple(head))
        data: bytes = head[1]
        if data:
            assert self._sink is not None  # noqa: S101 - checked out above
            self._sink.write(data)
