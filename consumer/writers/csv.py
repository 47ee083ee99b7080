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
_TRIGGERS = frozenset(FORMULA_STARTS)
PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def escape_formula(text: str) -> str:
    """Prefix `'` to text a spreadsheet would evaluate, leaving plain numbers alone."""
    if text.startswith(FORMULA_STARTS) and not PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def _slow_cell(value: Any, escape: bool) -> str:
    """A cell off the fast path: a string that may be a formula, or any other value."""
    if isinstance(value, str):
        return escape_formula(value) if escape else value
    return cell_text(value)


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
        escape = self._options.escape_formulas
        # The hot loop, one comprehension with no call per cell: strings that cannot be
        # formulas, ints, nulls and floats in fixed notation go to the csv module as they
        # are (it writes them as the cell rules say: str(), empty, repr()); the rest take
        # the slow path. Floats in [1e-4, 1e16) print the same shortest digits in fixed
        # notation from repr() as from JSON; outside that range the notations differ.
        rows = [
            [
                v
                if ((t := type(v := record.get(c))) is str and not (escape and v[:1] in _TRIGGERS))  # type: ignore[index]
                or t is int
                or v is None
                or (t is float and (1e-4 <= v < 1e16 or -1e16 < v <= -1e-4 or v == 0.0))  # noqa: PLR2004
                else ("true" if v is True else "false" if v is False else _slow_cell(v, escape))
                for c in columns
            ]
            for record in records
        ]
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
