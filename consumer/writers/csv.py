"""CSV per RFC 4180: UTF-8, CRLF, minimal quoting, optional BOM and formula escaping."""

from __future__ import annotations

import csv
import io
import re
from typing import TYPE_CHECKING, Any

from consumer.writers.cells import cell_text

if TYPE_CHECKING:
    from collections.abc import Sequence

    from consumer.structs import ExportOptions
    from consumer.writers import Sink

BOM = "\ufeff".encode()
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def escape_formula(text: str) -> str:
    """Prefix `'` to text a spreadsheet would evaluate, leaving plain numbers alone."""
    if text.startswith(FORMULA_STARTS) and not PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


class CsvWriter:
    """Writes rows batch by batch; each batch is formatted in memory, then written once."""

    def __init__(self, columns: Sequence[str], options: ExportOptions) -> None:
        self._columns = tuple(columns)
        self._options = options
        self._buffer = io.StringIO()
        self._csv = csv.writer(
            self._buffer,
            delimiter=options.delimiter,
            quotechar='"',
            doublequote=True,
            quoting=csv.QUOTE_MINIMAL,
            lineterminator="\r\n",
        )
        self._sink: Sink | None = None

    def begin(self, sink: Sink) -> None:
        self._sink = sink
        if self._options.bom:
            sink.write(BOM)
        if self._options.header:
            self._csv.writerow(self._columns)
            self._flush()

    def write_records(self, records: Sequence[dict[str, Any]]) -> None:
        columns = self._columns
        if self._options.escape_formulas:
            # Only strings are escaped: JSON numbers are never touched.
            rows = (
                [
                    escape_formula(v) if isinstance(v := record.get(c), str) else cell_text(v)
                    for c in columns
                ]
                for record in records
            )
        else:
            rows = ([cell_text(record.get(c)) for c in columns] for record in records)
        self._csv.writerows(rows)
        self._flush()

    def finish(self) -> None:
        self._flush()

    def close(self) -> None:
        """Nothing to release: the sink belongs to the store."""

    def _flush(self) -> None:
        if self._sink is None:
            raise RuntimeError("begin() was not called")
        text = self._buffer.getvalue()
        if text:
            self._sink.write(text.encode("utf-8"))
            self._buffer.seek(0)
            self._buffer.truncate()
