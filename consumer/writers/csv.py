"""CSV per RFC 4180: UTF-8, CRLF, minimal quoting, optional BOM and formula escaping."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any

from consumer._csvrows import format_json, format_rows
from consumer.fields import is_nested, lookup
from consumer.json_text import JsonNumber
from consumer.structs import as_columns
from consumer.writers.cells import FORMULA_START_CHARS, csv_cell, escape_formula
from consumer.writers.csv_columns import ColumnFormatter

if TYPE_CHECKING:
    from collections.abc import Sequence

    from consumer.structs import Column, ExportOptions
    from consumer.writers import Sink

BOM = "\ufeff".encode()


class CsvWriter:
    """Writes rows batch by batch; each batch is formatted in memory, then written once.

    A message's JSON text goes straight to rows in C where it can (`write_json`,
    `consumer/csvrows/json_rows.c`); decoded records go to the C formatter
    (`consumer/csvrows/rows.c`), which takes the common values, and a batch with a value
    it leaves to Python goes to the column formatter. The csv module writes the header,
    and the rows when there is one column (where it quotes an empty cell), and is the
    reference the formatters are tested against.
    """

    def __init__(self, columns: Sequence[str | Column], options: ExportOptions) -> None:
        self._labels = tuple(c.label for c in as_columns(columns))
        self._columns = fields = tuple(c.field for c in as_columns(columns))
        """Each column's field: where its value is."""
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
        self._formatter = (
            ColumnFormatter(fields, options.delimiter, escape_formulas=options.escape_formulas)
            if len(fields) > 1
            else None
        )
        self._nested = is_nested(fields)
        """A dotted field: the Python paths look it up by `consumer.fields`."""
        self._sink: Sink | None = None

    def begin(self, sink: Sink) -> None:
        self._sink = sink
        if self._options.bom:
            sink.write(BOM)
        if self._options.header:
            # Headings are cells: a spreadsheet evaluates a formula-like one just the same.
            escape = self._options.escape_formulas
            self._csv.writerow([escape_formula(c) if escape else c for c in self._labels])
            self._flush()

    def write_json(self, text: bytes) -> int | None:
        """A message's records written straight from its JSON text: how many, or None
        when the text is not in the subset C takes (then decode it and use write_records)."""
        options = self._options
        written = format_json(text, self._columns, options.delimiter, options.escape_formulas)
        if written is None:
            return None
        data, records = written
        self._write(data)
        return records

    def write_records(self, records: Sequence[dict[str, Any]]) -> None:
        if self._formatter is None:
            self.write_records_by_row(records)
            return
        batch = records if isinstance(records, list) else list(records)
        options = self._options
        data = format_rows(batch, self._columns, options.delimiter, options.escape_formulas)
        if data is None:
            self.write_records_by_column(batch)
            return
        self._write(data)

    def write_records_by_column(self, records: Sequence[dict[str, Any]]) -> None:
        """The column formatter: every batch of two or more columns the C one leaves."""
        assert self._formatter is not None  # noqa: S101 - two or more columns
        self._buffer.write(self._formatter.format(records))
        self._flush()

    def write_records_by_row(self, records: Sequence[dict[str, Any]]) -> None:
        """The csv module's rows, cell by cell: the one-column case and the reference."""
        columns = self._columns
        if self._nested:
            records = [{c: lookup(r, c) for c in columns} for r in records]
        escape = self._options.escape_formulas
        starts = FORMULA_START_CHARS
        # One comprehension with no call per common cell: strings that cannot be
        # formulas, numbers' texts, ints, nulls and floats in fixed notation go to the csv
        # module as they are (it writes them as the cell rules say: str(), empty, repr());
        # the rest take the slow path. Floats in [1e-4, 1e16) print the same shortest
        # digits in fixed notation from repr() as from JSON; outside that range they differ.
        rows = [
            [
                v
                if ((t := type(v := record.get(c))) is str and not (escape and v[:1] in starts))  # type: ignore[index]
                or t is JsonNumber
                or t is int
                or v is None
                or (t is float and (1e-4 <= v < 1e16 or -1e16 < v <= -1e-4 or v == 0.0))  # noqa: PLR2004
                else ("true" if v is True else "false" if v is False else csv_cell(v, escape))
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
        """What the csv module (or the column formatter) put in the buffer, as UTF-8."""
        text = self._buffer.getvalue()
        if text:
            self._write(text.encode("utf-8"))
            self._buffer.seek(0)
            self._buffer.truncate()

    def _write(self, data: bytes) -> None:
        if self._sink is None:
            raise RuntimeError("begin() was not called")
        self._sink.write(data)
