"""A batch of records as CSV text, formatted a column at a time.

The row-by-row writer spends most of its time in Python per cell. Here each column is
pulled out at once and its value types taken as a set; a column of strings and numbers'
texts (`JsonNumber`), or of Python numbers, booleans and nulls, is converted and checked
for formula starts and quoting by C-level calls over the whole column (`map`,
`orjson.dumps`, `str.join`, one regex search). A column of any other kind takes the cell
rules value by value. The bytes are the csv module's, which a differential test holds it
to.
"""

from __future__ import annotations

import re
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import orjson

from consumer.fields import is_nested, lookup
from consumer.json_text import JsonNumber
from consumer.writers.cells import FORMULA_START_CHARS, csv_cell, escape_formula

if TYPE_CHECKING:
    from collections.abc import Sequence

_NONE = type(None)
_JSON_SCALARS = frozenset({int, float, bool, _NONE})
# Strings and numbers' texts: a number's text is always a plain number, never escaped.
_TEXTS = frozenset({str, JsonNumber, _NONE})
_first_char = itemgetter(slice(0, 1))


class ColumnFormatter:
    """Formats batches for fixed columns, delimiter and formula escaping."""

    def __init__(
        self,
        columns: Sequence[str],
        delimiter: str,
        *,
        escape_formulas: bool,
    ) -> None:
        if len(columns) < 2:  # noqa: PLR2004 - itemgetter of one key is not a tuple
            raise ValueError("column formatting needs two or more columns")
        self._columns = tuple(columns)
        self._row_of = itemgetter(*columns)
        self._nested = is_nested(columns)
        self._delimiter = delimiter
        self._escape_formulas = escape_formulas
        self._needs_quotes = re.compile("[" + re.escape(delimiter + '"\r\n') + "]")

    def format(self, records: Sequence[dict[str, Any]]) -> str:
        """The batch's rows, each ending in CRLF."""
        if not records:
            return ""
        texts = [self._texts(list(values)) for values in self._columns_of(records)]
        return "\r\n".join(map(self._delimiter.join, zip(*texts, strict=True))) + "\r\n"

    def _columns_of(self, records: Sequence[dict[str, Any]]) -> Sequence[Sequence[Any]]:
        if self._nested:
            return [[lookup(record, column) for record in records] for column in self._columns]
        try:
            return list(zip(*map(self._row_of, records), strict=True))
        except KeyError:  # some record lacks a column: missing is null
            return [[record.get(column) for record in records] for column in self._columns]

    def _texts(self, values: list[Any]) -> list[str]:
        kinds = set(map(type, values))
        if kinds <= _TEXTS:
            texts = [v or "" for v in values] if _NONE in kinds else values
            if self._escape_formulas and not FORMULA_START_CHARS.isdisjoint(
                map(_first_char, texts)
            ):
                texts = [escape_formula(t) if t[:1] in FORMULA_START_CHARS else t for t in texts]
        elif kinds <= _JSON_SCALARS and (json := _json_texts(values)) is not None:
            texts = json
        else:
            texts = [csv_cell(v, self._escape_formulas) for v in values]
        needs_quotes = self._needs_quotes.search
        if needs_quotes("".join(texts)):
            texts = ['"' + t.replace('"', '""') + '"' if needs_quotes(t) else t for t in texts]
        return texts


def _json_texts(values: list[Any]) -> list[str] | None:
    """Numbers and booleans as JSON writes them, nulls empty: the cell rules, from one
    `orjson.dumps` of the column (no such text holds a comma or "null"); None when the
    column has an integer past 64 bits, which orjson does not write."""
    try:
        return orjson.dumps(values)[1:-1].decode().replace("null", "").split(",")
    except orjson.JSONEncodeError:
        return None
