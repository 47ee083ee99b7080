"""Workbooks: one worksheet, a bold frozen heading row, typed cells, the title in the
document's properties.

Strings are always text cells (a string that starts with `=` is text, never a formula:
the writer has no formula path for data), numbers number cells, booleans boolean cells,
null and missing empty, objects and arrays compact JSON text. A number a spreadsheet
cannot hold exactly (more than 15 significant digits, or an integer past 2^53) is written
as its text, so nothing is rounded. A `timestamp` column's RFC 3339 strings become date
cells (UTC); other strings stay the text they are. Column widths are fitted to the first
`SAMPLE_ROWS` records.

rustpy-xlsxwriter pulls rows from an iterator and writes them in constant memory to a
package (a ZIP) in a temporary file; it runs in a thread of the lane, fed batch by batch.
At `finish()` the package is copied to the sink with the title set (`xlsx_package`).
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import tempfile
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

import rustpy_xlsxwriter

from consumer.batches import plain_batch
from consumer.fields import row_getter
from consumer.json_text import JsonNumber, compact_json
from consumer.structs import ColumnType, as_columns
from consumer.writers import Rejected
from consumer.writers.xlsx_package import copy_with_core

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from consumer.structs import Column
    from consumer.writers import Sink
    from consumer.writers.files import FileInfo

SAMPLE_ROWS = 100
"""Records whose text widths fit the columns."""
MAX_WIDTH = 60
MAX_CELL_CHARS = 32_767
"""What a cell holds; a longer string is a bad record, not a cut one."""
EXACT_INTEGER = 2**53
QUEUED_BATCHES = 4
"""Batches waiting for the writer thread: the lane stays at most this far ahead."""
# A run of 16 digits (a point may split it) somewhere in a message: some number in it may
# be past 15 significant digits, so it is read with every number's text.
_LONG_NUMBER = re.compile(rb"(?:\d\.?){16}")
_EXPONENT = re.compile("[eE]")
# XML 1.0 has no place for these; a title is text, so they go.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_SHEET_NAME_BAD = re.compile(r"[\[\]:*?/\\]")
PRINTED = {
    "landscape": True,
    "fit_to_pages": (1, 0),  # every column on the page's width, as many pages as it takes
    "repeat_rows": 0,  # the heading on every printed page
    "footer": "&CPage &P of &N",
}
"""How the sheet prints (and how LibreOffice renders it to PDF)."""
BOOLEAN_FORMAT = '"TRUE";"TRUE";"FALSE"'
"""A number format that shows a boolean cell as Excel does, in LibreOffice too."""
_DONE = object()
_STOP = object()


class _Stopped(Exception):
    """The export ended before the workbook was finished."""


def _number_cell(text: str) -> int | float | str:
    """A number's text as a number cell, or as text when a double would round it."""
    body = text.lstrip("+-")
    mantissa = _EXPONENT.split(body, maxsplit=1)[0]
    if len(mantissa.replace(".", "").lstrip("0")) > 15:  # noqa: PLR2004 - a double's digits
        return text
    if body.isdigit():
        number = int(text)
        return number if -EXACT_INTEGER <= number <= EXACT_INTEGER else text
    value = float(text)
    return value if abs(value) != float("inf") else text


def _time_cell(value: str) -> datetime | str:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None or "T" not in value.upper():
        return value
    return moment.astimezone(UTC).replace(tzinfo=None)


def _cell(value: Any) -> Any:
    if isinstance(value, JsonNumber):
        return _number_cell(value)
    if isinstance(value, dict | list):
        return compact_json(value)
    if type(value) is int and not -EXACT_INTEGER <= value <= EXACT_INTEGER:
        return str(value)
    return value


class XlsxWriter:
    """Feeds rows to the workbook writer's thread; the package is copied out at the end."""

    def __init__(self, columns: Sequence[str | Column], info: FileInfo) -> None:
        cols = as_columns(columns)
        self._labels = [c.label for c in cols]
        self._row = row_getter([c.field for c in cols])
        self._times = [i for i, c in enumerate(cols) if c.type is ColumnType.TIMESTAMP]
        self._info = info
        self._sample: list[dict[str, Any]] = []
        self._batches: queue.Queue[Any] = queue.Queue(QUEUED_BATCHES)
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._sink: Sink | None = None
        fd, self._path = tempfile.mkstemp(suffix=".xlsx", prefix="export-")
        os.close(fd)

    def begin(self, sink: Sink) -> None:
        self._sink = sink

    def write_json(self, text: bytes) -> int | None:
        """A message of plain numbers decoded by orjson (its numbers are what a double
        holds exactly); None for the exact path otherwise."""
        if _LONG_NUMBER.search(text):
            return None
        records = plain_batch(text)
        if records is None:
            return None
        rows, long_cells = self._rows_of(records)
        if long_cells:
            return None  # the exact path reports them
        self._put(rows)
        return len(records)

    def write_records(self, records: Sequence[dict[str, Any]]) -> Rejected | None:
        rows, long_cells = self._rows_of(records)
        self._put(rows)
        if long_cells:
            return Rejected(
                len(long_cells),
                f"column {long_cells[0]!r} holds a string longer than a cell's "
                f"{MAX_CELL_CHARS:,} characters",
            )
        return None

    def _rows_of(self, records: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
        """The records' rows of cells, and the column of each record left out (too long)."""
        rows: list[dict[str, Any]] = []
        long_cells: list[str] = []
        labels = self._labels
        for record in records:
            cells = [_cell(v) for v in self._row(record)]
            for index in self._times:
                if isinstance(cells[index], str):
                    cells[index] = _time_cell(cells[index])
            too_long = next(
                (i for i, c in enumerate(cells) if isinstance(c, str) and len(c) > MAX_CELL_CHARS),
                None,
            )
            if too_long is not None:
                long_cells.append(labels[too_long])
                continue
            rows.append(dict(zip(labels, cells, strict=True)))
        return rows, long_cells

    def _put(self, rows: list[dict[str, Any]]) -> None:
        if self._thread is None:
            self._sample.extend(rows)
            if len(self._sample) >= SAMPLE_ROWS:
                self._start()
            return
        self._raise_failure()
        while True:
            try:
                self._batches.put(rows, timeout=1)
            except queue.Full:
                self._raise_failure()  # the thread died: nothing takes from the queue
            else:
                return

    def _start(self) -> None:
        sample, self._sample = self._sample, []
        widths = [_width(label, sample) for label in self._labels]
        # LibreOffice shows a boolean cell as 1 or 0 unless its format says otherwise.
        flags = {
            label: rustpy_xlsxwriter.Format().set_num_format(BOOLEAN_FORMAT)
            for label in self._labels
            if _all_booleans(label, sample)
        }
        title = self._info.title or "Export"
        sheet = _SHEET_NAME_BAD.sub(" ", title)[:31].strip("' ") or "Export"
        self._thread = threading.Thread(
            target=self._write, args=(sheet, widths, flags, sample), name="xlsx", daemon=True
        )
        self._thread.start()

    def _write(
        self,
        sheet: str,
        widths: list[float],
        flags: dict[str, rustpy_xlsxwriter.Format],
        sample: list[dict[str, Any]],
    ) -> None:
        try:
            (
                rustpy_xlsxwriter.FastExcel(self._path, columns=self._labels)
                .format(bold_headers=True, datetime_format="yyyy-mm-dd hh:mm:ss")
                .freeze(row=1)
                .sheet(
                    sheet,
                    self._rows(sample),
                    column_widths=widths,
                    column_formats=flags or None,
                    page_setup=PRINTED,
                )
                .save()
            )
        except BaseException as exc:  # noqa: BLE001 - handed to the lane's thread
            self._failure = exc

    def _rows(self, sample: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        yield from sample
        written = len(sample)
        while (batch := self._batches.get()) is not _DONE:
            if batch is _STOP:
                raise _Stopped
            written += len(batch)
            yield from batch
        if not written:
            # The writer takes the heading from the rows: one with no cells writes it
            # and nothing else.
            yield dict.fromkeys(self._labels)

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise RuntimeError(f"writing the workbook failed: {self._failure}") from None

    def finish(self) -> None:
        if self._sink is None:
            raise RuntimeError("begin() was not called")
        if self._thread is None:
            self._start()
        assert self._thread is not None  # noqa: S101 - started above
        self._batches.put(_DONE)
        self._thread.join()
        self._raise_failure()
        with open(self._path, "rb") as package:  # noqa: PTH123 - a plain binary read
            copy_with_core(package, self._sink, _core_xml(self._info))

    def close(self) -> None:
        """Stop the thread if it runs, and remove the temporary package."""
        if self._thread is not None and self._thread.is_alive():
            self._batches.put(_STOP)
            self._thread.join()
        self._thread = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path)  # noqa: PTH108


def _all_booleans(label: str, sample: list[dict[str, Any]]) -> bool:
    values = [row.get(label) for row in sample if row.get(label) is not None]
    return bool(values) and all(isinstance(v, bool) for v in values)


def _width(label: str, sample: list[dict[str, Any]]) -> float:
    """Characters of the widest of the heading and the sample's texts, within bounds."""
    texts = [label] + [_shown(row.get(label)) for row in sample]
    return float(min(MAX_WIDTH, max(8, *(len(t) + 2 for t in texts))))


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return "yyyy-mm-dd hh:mm:ss"
    if isinstance(value, bool):
        return "FALSE"
    return str(value)


def _text(value: str) -> str:
    return escape(_NOT_XML.sub("", value))


def _core_xml(info: FileInfo) -> bytes:
    """The document's core properties: its title, and the export it came from."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/'
        'metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:dcterms="http://purl.org/dc/terms/" '
        'xmlns:dcmitype="http://purl.org/dc/dcmitype/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<dc:title>{_text(info.title)}</dc:title>"
        f"<dc:subject>{_text(info.source)}</dc:subject>"
        f"<dc:identifier>{_text(info.export_id)}</dc:identifier>"
        "<dc:creator>export-consumer</dc:creator>"
        f'<dcterms:created xsi:type="dcterms:W3CDTF">{now}</dcterms:created>'
        f'<dcterms:modified xsi:type="dcterms:W3CDTF">{now}</dcterms:modified>'
        "</cp:coreProperties>"
    ).encode()
