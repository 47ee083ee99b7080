"""JSON Lines: one compact JSON object per record and `\\n`, the column labels as keys.

A value is written as the record holds it: numbers as their text in the message, strings
re-escaped as JSON requires (orjson's escaping), objects and arrays as compact JSON,
missing as null.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from consumer._csvrows import format_jsonl
from consumer.fields import row_getter
from consumer.json_text import compact_json
from consumer.structs import as_columns

if TYPE_CHECKING:
    from collections.abc import Sequence

    from consumer.structs import Column
    from consumer.writers import Sink


class JsonlWriter:
    """Writes each batch's lines at once; the labels are distinct (the request says so)."""

    def __init__(self, columns: Sequence[str | Column]) -> None:
        cols = as_columns(columns)
        self._labels = tuple(c.label for c in cols)
        self._fields = tuple(c.field for c in cols)
        self._row = row_getter(self._fields)
        # What comes before each value on a line: `{"label":`, then `,"label":`.
        keys = [orjson.dumps(label) + b":" for label in self._labels]
        self._prefixes = tuple(b"{" + k if i == 0 else b"," + k for i, k in enumerate(keys))
        self._sink: Sink | None = None

    def begin(self, sink: Sink) -> None:
        self._sink = sink

    def write_records(self, records: Sequence[dict[str, Any]]) -> None:
        if self._sink is None:
            raise RuntimeError("begin() was not called")
        labels, row = self._labels, self._row
        lines = [compact_json(dict(zip(labels, row(r), strict=True))) for r in records]
        if lines:
            self._sink.write(("\n".join(lines) + "\n").encode())

    def write_json(self, text: bytes) -> int | None:
        """A message's lines straight from its JSON text, in C (`format_jsonl`): how many
        records, or None when the text needs decoding first."""
        written = format_jsonl(text, self._fields, self._prefixes)
        if written is None:
            return None
        data, records = written
        if self._sink is None:
            raise RuntimeError("begin() was not called")
        self._sink.write(data)
        return records

    def finish(self) -> None:
        """Nothing after the last line."""

    def close(self) -> None:
        """Nothing to release: the sink belongs to the store."""
