"""PDF rendering in worker processes, so the event loop and its heartbeats never wait on it.

Each export checks out one long-lived worker and talks to it over a pipe: `begin`, then
`add` per batch, then `finish`, which returns the PDF's bytes. A worker that is abandoned
mid-report (cancel, deadline, error) is killed and replaced; one that dies fails its
export with `internal` and the pool starts a fresh one for the next.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from consumer.fields import lookup
from consumer.structs import as_columns
from consumer.workers import Worker, WorkerPool, error_reply
from consumer.writers.cells import cell_text
from consumer.writers.pdf import PdfRenderer, ReportInfo
from consumer.writers.pdf_fonts import register_fonts

if TYPE_CHECKING:
    from collections.abc import Sequence
    from multiprocessing.connection import Connection

    from consumer.structs import Column, ExportOptions
    from consumer.writers import Sink
    from consumer.writers.pdf_fonts import FontChoice

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
AHEAD = 2
"""Batches sent to a worker before waiting for it to draw the oldest."""


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
        columns: Sequence[str | Column],
        options: ExportOptions,
        info: ReportInfo,
    ) -> None:
        self._pool = pool
        self._columns = as_columns(columns)
        self._fields = tuple(c.field for c in self._columns)
        self._options = options
        self._info = info
        self._worker: Worker | None = None
        self._sink: Sink | None = None
        self._unanswered = 0

    def begin(self, sink: Sink) -> None:
        self._sink = sink
        self._worker = self._pool.checkout()
        self._worker.call("begin", self._columns, self._options, self._info, self._pool.max_pages)

    def write_records(self, records: Sequence[dict[str, Any]]) -> None:
        if self._worker is None:
            raise RuntimeError("begin() was not called")
        fields = self._fields
        self._worker.send("add", [[cell_text(lookup(r, f)) for f in fields] for r in records])
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
