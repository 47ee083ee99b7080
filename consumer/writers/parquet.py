"""Parquet: one file, a row group per `ROW_GROUP_ROWS` records, zstd, typed columns.

A column's type is its declared `type`, else that of its first non-null value (string,
int64 for an integer, double for another number, bool; objects and arrays are compact
JSON strings). A record with a value that does not fit its column (an int into a double
column fits) is left out and told (`Rejected`), so the bad-record rules decide. A column
with only nulls in the first row group is a string column. `timestamp` reads RFC 3339
strings (a zone required) as UTC microseconds. The request (id, title, source) is the
file's key-value metadata.

Values are checked a column of a batch at a time (the set of its value types, then
pyarrow's converters); only a batch that fails is looked at value by value.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from consumer.batches import plain_batch
from consumer.fields import row_getter
from consumer.json_text import JsonNumber, compact_json
from consumer.structs import ColumnType, as_columns
from consumer.writers import Rejected

if TYPE_CHECKING:
    from collections.abc import Sequence

    from consumer.structs import Column
    from consumer.writers import Sink
    from consumer.writers.files import FileInfo

ROW_GROUP_ROWS = 32_768
"""Records held (as Arrow arrays) before a row group is written: a few MB at ten columns."""
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_NONE = type(None)
_ARROW_TYPES = {
    ColumnType.STRING: pa.string(),
    ColumnType.INT64: pa.int64(),
    ColumnType.DOUBLE: pa.float64(),
    ColumnType.BOOL: pa.bool_(),
    ColumnType.TIMESTAMP: pa.timestamp("us", tz="UTC"),
}
# What a batch's column may hold, by the column's type, to be converted whole.
_FITS: dict[ColumnType, frozenset[type]] = {
    ColumnType.STRING: frozenset({str, _NONE}),
    ColumnType.INT64: frozenset({int, _NONE}),
    ColumnType.DOUBLE: frozenset({int, float, _NONE}),
    ColumnType.BOOL: frozenset({bool, _NONE}),
    ColumnType.TIMESTAMP: frozenset({str, _NONE}),
}


class Misfit(ValueError):
    """A value that does not fit its column."""


def _number(text: JsonNumber) -> int | float:
    """A number's text as Python holds it: an integer's as int, any other as float."""
    if text.lstrip("-").isdigit():
        return int(text)
    return float(text)


def _plain(value: Any) -> Any:
    """A decoded value as orjson would have made it (numbers from their text)."""
    if isinstance(value, JsonNumber):
        return _number(value)
    return value


def _inferred(value: Any) -> ColumnType:
    if isinstance(value, bool):
        return ColumnType.BOOL
    if isinstance(value, int):
        return ColumnType.INT64
    if isinstance(value, float):
        return ColumnType.DOUBLE
    return ColumnType.STRING


# Whether a value (not null) fits a column of each type as it is.
_FITS_ONE = {
    ColumnType.STRING: lambda v: isinstance(v, str | dict | list),
    ColumnType.INT64: lambda v: type(v) is int and INT64_MIN <= v <= INT64_MAX,
    ColumnType.DOUBLE: lambda v: type(v) in (int, float) and _finite(v),
    ColumnType.BOOL: lambda v: isinstance(v, bool),
    ColumnType.TIMESTAMP: lambda v: isinstance(v, str) and _all_times([v]),
}


def _fit(value: Any, kind: ColumnType) -> Any:
    """The value as the column stores it, or `Misfit` saying why not."""
    if value is None:
        return None
    if _FITS_ONE[kind](value):
        if isinstance(value, dict | list):
            return compact_json(value)
        return float(value) if kind is ColumnType.DOUBLE else value
    shown = compact_json(value) if isinstance(value, dict | list) else orjson.dumps(value).decode()
    if len(shown) > 40:  # noqa: PLR2004 - enough to recognise it
        shown = shown[:39] + "…"
    if kind is ColumnType.TIMESTAMP and isinstance(value, str):
        raise Misfit(f"{shown} is not an RFC 3339 time with a zone")
    raise Misfit(f"{shown} does not fit a {kind.value} column")


def _finite(number: float) -> bool:
    try:
        return math.isfinite(number)
    except OverflowError:  # an int past a double's range
        return False


class ParquetFileWriter:
    """Holds one row group of values; the file's footer is written at `finish()`."""

    def __init__(self, columns: Sequence[str | Column], info: FileInfo) -> None:
        cols = as_columns(columns)
        self._labels = [c.label for c in cols]
        self._row = row_getter([c.field for c in cols])
        self._types: list[ColumnType | None] = [c.type for c in cols]
        self._info = info
        self._held: list[list[pa.Array | int]] = [[] for _ in cols]
        """Each column's batches as Arrow arrays (compact, unlike the decoded values), or
        as a count of nulls while the column's type is not known."""
        self._rows = 0
        self._file: _Position | None = None
        self._writer: pq.ParquetWriter | None = None

    def begin(self, sink: Sink) -> None:
        self._file = _Position(sink)

    def write_json(self, text: bytes) -> int | None:
        """A message decoded by orjson (its numbers' text does not matter here: they
        become int64 or double either way); None when it is not a plain batch of objects
        or a value does not fit, so the exact path finds the bad records."""
        records = plain_batch(text)
        if records is None:
            return None
        columns = list(zip(*map(self._row, records), strict=True)) if records else []
        if records and not self._take_whole(columns, exact=False):
            return None
        return len(records)

    def write_records(self, records: Sequence[dict[str, Any]]) -> Rejected | None:
        rows = [[_plain(v) for v in self._row(r)] for r in records]
        if not rows or self._take_whole(list(zip(*rows, strict=True)), exact=True):
            return None
        kept, problems = [], []
        for row in rows:
            try:
                kept.append(self._fitted_row(row))
            except Misfit as exc:
                problems.append(str(exc))
        if kept:
            self._hold(list(zip(*kept, strict=True)), len(kept))
        return Rejected(len(problems), problems[0]) if problems else None

    def _take_whole(self, columns: list[tuple[Any, ...]], *, exact: bool) -> bool:
        """Hold a batch whose every column fits as it is; False (holding nothing) if not.
        Objects and arrays become strings only from an `exact` decoding (numbers' text)."""
        fitted = []
        for index, values in enumerate(columns):
            kind = self._type_of(index, values)
            column: Sequence[Any] | None = (
                values if kind is None else _whole_column(values, kind, exact=exact)
            )
            if column is None:
                return False
            fitted.append(column)
        if columns:
            self._hold(fitted, len(columns[0]))
        return True

    def _hold(self, columns: Sequence[Sequence[Any]], rows: int) -> None:
        for held, kind, values in zip(self._held, self._types, columns, strict=True):
            held.append(rows if kind is None else _array(list(values), _ARROW_TYPES[kind]))
        self._added(rows)

    def _type_of(self, index: int, values: Sequence[Any]) -> ColumnType | None:
        """The column's type, taken from its first non-null value if not known yet."""
        kind = self._types[index]
        if kind is None:
            first = next((v for v in values if v is not None), None)
            if first is not None:
                kind = self._types[index] = _inferred(first)
        return kind

    def _fitted_row(self, row: list[Any]) -> list[Any]:
        fitted = []
        for index, value in enumerate(row):
            kind = self._type_of(index, [value])
            try:
                fitted.append(value if kind is None else _fit(value, kind))
            except Misfit as exc:
                raise Misfit(f"column {self._labels[index]!r}: {exc}") from None
        return fitted

    def _added(self, rows: int) -> None:
        self._rows += rows
        if self._rows >= ROW_GROUP_ROWS:
            self._write_group()

    def _write_group(self) -> None:
        if self._file is None:
            raise RuntimeError("begin() was not called")
        if self._writer is None:
            types = [_ARROW_TYPES[t or ColumnType.STRING] for t in self._types]
            self._types = [t or ColumnType.STRING for t in self._types]
            info = self._info
            metadata = {"export_id": info.export_id, "title": info.title, "source": info.source}
            schema = pa.schema(list(zip(self._labels, types, strict=True)), metadata=metadata)
            self._writer = pq.ParquetWriter(
                pa.PythonFile(self._file, mode="w"), schema, compression="zstd"
            )
        schema = self._writer.schema
        # One contiguous array a column: the writer pages through it faster than through
        # a thousand small chunks.
        arrays = [
            pa.concat_arrays([pa.nulls(c, kind) if isinstance(c, int) else c for c in chunks])
            if chunks
            else pa.array([], kind)
            for chunks, kind in zip(self._held, schema.types, strict=True)
        ]
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
        self._held = [[] for _ in self._held]
        self._rows = 0

    def finish(self) -> None:
        if self._rows or self._writer is None:
            self._write_group()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def close(self) -> None:
        """Drop what is held; an unfinished file is thrown away by the store."""
        self._held = [[] for _ in self._held]
        self._writer = None


def _whole_column(
    values: tuple[Any, ...], kind: ColumnType, *, exact: bool
) -> Sequence[Any] | None:
    """A batch's values for a column, as it stores them, when all fit; None if any may not."""
    kinds = set(map(type, values))
    if not kinds <= _FITS[kind]:
        nested = {str, dict, list, _NONE}
        if kind is not ColumnType.STRING or not exact or not kinds <= nested:
            return None
        return [compact_json(v) if isinstance(v, dict | list) else v for v in values]
    present = [v for v in values if v is not None]
    if not present:
        return values
    if kind is ColumnType.INT64:
        fits = min(present) >= INT64_MIN and max(present) <= INT64_MAX
    elif kind is ColumnType.DOUBLE:
        fits = all(map(_finite, present))
    elif kind is ColumnType.TIMESTAMP:
        fits = _all_times(present)
    else:
        fits = True
    return values if fits else None


def _all_times(texts: list[str]) -> bool:
    """Whether every text parses as a timestamp. Arrow's error is the answer, not a
    failure: a batch with one that does not parse is taken row by row, where that value
    is a misfit, a bad record at its offset."""
    try:
        pc.cast(pa.array(texts, pa.string()), _ARROW_TYPES[ColumnType.TIMESTAMP])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


def _array(values: list[Any], kind: pa.DataType) -> pa.Array:
    if pa.types.is_timestamp(kind):
        return pc.cast(pa.array(values, pa.string()), kind)
    return pa.array(values, kind)


class _Position:
    """The lane's sink as pyarrow writes to it: a stream whose position is every byte
    written, though the lane takes the bytes away after each piece (the footer records
    where each row group starts)."""

    closed = False

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._written = 0

    def write(self, data: bytes | memoryview) -> int:
        self._written += len(data)
        self._sink.write(bytes(data))
        return len(data)

    def tell(self) -> int:
        return self._written

    def flush(self) -> None:
        """The sink keeps nothing back."""

    def close(self) -> None:
        """The sink belongs to the lane."""
