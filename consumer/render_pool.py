"""PDF rendering in worker processes, so the event loop and its heartbeats never wait on it.

Each export checks out one long-lived worker and talks to it over a pipe: `begin`, then
`add` per batch, then `finish`, which returns the PDF's bytes. A worker that is abandoned
mid-report (cancel, deadline, error) is killed and replaced; one that dies fails its
export with `internal` and the pool starts a fresh one for the next.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from typing import TYPE_CHECKING, Any

from consumer.errors import (
    BadRecord,
    ExportError,
    FailureReason,
    InvalidRequest,
    TooLarge,
    WriteError,
)
from consumer.writers.cells import cell_text
from consumer.writers.pdf import PdfRenderer, ReportInfo
from consumer.writers.pdf_fonts import register_fonts

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    from consumer.structs import ExportOptions
    from consumer.writers import Sink
    from consumer.writers.pdf_fonts import FontChoice

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
AHEAD = 2
"""Batches sent to a worker before waiting for it to draw the oldest."""
_ERRORS: dict[str, type[ExportError]] = {
    FailureReason.INVALID_REQUEST.value: InvalidRequest,
    FailureReason.TOO_LARGE.value: TooLarge,
    FailureReason.BAD_RECORD.value: BadRecord,
    FailureReason.WRITE_ERROR.value: WriteError,
}


def _serve(conn: Connection, regular: str, bold: str) -> None:  # pragma: no cover - in worker
    """The worker process: render reports one at a time until told to close."""
    from pathlib import Path  # noqa: PLC0415 - keeps the worker's start-up imports minimal

    register_fonts(Path(regular), Path(bold))
    renderer: PdfRenderer | None = None
    while True:
        try:
            command, *args = conn.recv()
        except EOFError:
            return
        try:
            if command == "begin":
                renderer = PdfRenderer(*args)
                conn.send(("ok", None))
            elif command == "add" and renderer is not None:
                renderer.add_rows(args[0])
                conn.send(("ok", None))
            elif command == "finish" and renderer is not None:
                data, renderer = renderer.finish(), None
                conn.send(("ok", data))
            else:
                return
        except Exception as exc:  # noqa: BLE001 - the process boundary: report, don't die
            renderer = None
            conn.send(error_reply(exc))


def error_reply(exc: Exception, *extra: Any) -> tuple[Any, ...]:
    """An exception as a worker sends it back: reason, message, offset, then `extra`."""
    if isinstance(exc, ExportError):
        return ("error", exc.reason.value, exc.message, exc.offset, *extra)
    return ("error", FailureReason.INTERNAL.value, f"{type(exc).__name__}: {exc}", None, *extra)


def raise_reply(reply: tuple[Any, ...]) -> None:
    """Raise the error a worker reported, with its reason and offset."""
    _, reason, text, offset, *_ = reply
    raise _ERRORS.get(reason, ExportError)(text, offset=offset)


class _Worker:
    def __init__(self, process: BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn

    def call(self, *message: Any) -> Any:
        self.send(*message)
        return self.receive()

    def send(self, *message: Any) -> None:
        try:
            self.conn.send(message)
        except OSError as exc:
            raise self._died() from exc

    def receive(self) -> Any:
        """The reply to the oldest message sent; a reported error is raised here."""
        reply = self.receive_reply()
        if reply[0] == "error":
            raise_reply(reply)
        return reply[1]

    def receive_reply(self) -> tuple[Any, ...]:
        """The reply as sent, errors included; a dead worker raises `internal`."""
        try:
            reply: tuple[Any, ...] = self.conn.recv()
        except (EOFError, OSError) as exc:
            raise self._died() from exc
        return reply

    def _died(self) -> ExportError:
        self.process.join(timeout=1)
        return ExportError(
            f"the {self.process.name} process died (exit code {self.process.exitcode})"
        )

    def kill(self) -> None:
        self.conn.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)


class WorkerPool:
    """Up to `size` worker processes running `target(conn, *args)`; idle ones are kept."""

    def __init__(
        self, size: int, target: Callable[..., None], args: tuple[Any, ...], name: str
    ) -> None:
        self.size = size
        self.name = name
        self._target = target
        self._args = args
        self._context = multiprocessing.get_context("spawn")
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False

    def worker_pids(self) -> list[int]:
        """Process ids of the workers (for operators and fault tests)."""
        with self._lock:
            return [w.process.pid for w in [*self._idle, *self._busy] if w.process.pid]

    def checkout(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise ExportError(f"the {self.name} pool is shut down")
            worker = self._idle.pop() if self._idle else None
        if worker is None or not worker.process.is_alive():
            worker = self._spawn()
        with self._lock:
            self._busy.add(worker)
        return worker

    def checkin(self, worker: _Worker, *, reusable: bool) -> None:
        with self._lock:
            self._busy.discard(worker)
            keep = reusable and not self._closed and worker.process.is_alive()
            if keep and len(self._idle) < self.size:
                self._idle.append(worker)
                return
        worker.kill()

    def _spawn(self) -> _Worker:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=self._target, args=(child, *self._args), name=self.name, daemon=True
        )
        process.start()
        child.close()
        return _Worker(process, parent)

    def stop(self) -> None:
        """Kill every worker; safe to call twice."""
        with self._lock:
            self._closed = True
            workers = [*self._idle, *self._busy]
            self._idle.clear()
            self._busy.clear()
        for worker in workers:
            worker.kill()


class PdfWorkerPool(WorkerPool):
    """The PDF renderers, with the fonts registered once per process."""

    def __init__(self, size: int, font: FontChoice, max_pages: int) -> None:
        super().__init__(size, _serve, (str(font.regular), str(font.bold)), "pdf-worker")
        self.max_pages = max_pages


class PdfWriter:
    """The `Writer` for PDF: forwards batches to a worker, writes the returned bytes.

    Records become rows of cell text here, so the worker only draws, and batches are
    sent without waiting for the one before to be drawn (at most `AHEAD` in the pipe):
    fetching and decoding overlap with drawing, on another core.
    """

    def __init__(
        self,
        pool: PdfWorkerPool,
        columns: Sequence[str],
        options: ExportOptions,
        info: ReportInfo,
    ) -> None:
        self._pool = pool
        self._columns = tuple(columns)
        self._options = options
        self._info = info
        self._worker: _Worker | None = None
        self._sink: Sink | None = None
        self._unanswered = 0

    def begin(self, sink: Sink) -> None:
        self._sink = sink
        self._worker = self._pool.checkout()
        self._worker.call("begin", self._columns, self._options, self._info, self._pool.max_pages)

    def write_records(self, records: Sequence[dict[str, Any]]) -> None:
        if self._worker is None:
            raise RuntimeError("begin() was not called")
        columns = self._columns
        self._worker.send("add", [[cell_text(r.get(c)) for c in columns] for r in records])
        self._unanswered += 1
        while self._unanswered > AHEAD:
            self._worker.receive()
            self._unanswered -= 1

    def finish(self) -> None:
        if self._worker is None or self._sink is None:
            raise RuntimeError("begin() was not called")
        while self._unanswered:
            self._worker.receive()
            self._unanswered -= 1
        data: bytes = self._worker.call("finish")
        self._pool.checkin(self._worker, reusable=True)
        self._worker = None
        view = memoryview(data)
        for start in range(0, len(view), CHUNK):
            self._sink.write(bytes(view[start : start + CHUNK]))

    def close(self) -> None:
        """A report not finished is abandoned: its worker is killed, not reused."""
        if self._worker is not None:
            self._pool.checkin(self._worker, reusable=False)
            self._worker = None
