"""Dotted fields: the exact key first, then a walk through nested objects; what is not
found is missing. The CSV writer's paths all write what `lookup` finds."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumer.batches import decode_batch
from consumer.fields import lookup, row_getter
from consumer.structs import Column, ExportOptions
from consumer.writers.csv import CsvWriter
from tests.json_strategies import SETTINGS

RECORD = {
    "customer": {"name": "Ada", "address": {"city": "Paris"}, "tags": ["a"]},
    "a.b": "whole key",
    "a": {"b": "walked"},
    "list": [{"x": 1}],
    "scalar": 5,
    "nul": None,
}


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("customer.name", "Ada"),
        ("customer.address.city", "Paris"),
        ("customer.address", {"city": "Paris"}),
        ("a.b", "whole key"),  # the exact key wins over the walk
        ("customer.tags.0", None),  # arrays are not walked
        ("list.0.x", None),
        ("scalar.x", None),  # an intermediate that is not an object
        ("nul.x", None),
        ("customer.missing", None),
        ("missing.name", None),
        ("customer.", None),
        (".customer", None),
        ("nul", None),
        ("scalar", 5),
    ],
)
def test_lookup(field: str, expected: Any) -> None:
    assert lookup(RECORD, field) == expected


def test_null_exact_key_is_not_walked() -> None:
    """A key of the field's exact name holds the value, even null."""
    assert lookup({"a.b": None, "a": {"b": 1}}, "a.b") is None


_keys = st.sampled_from(["a", "b", "a.b", "c", "a.c", "b.a"])
_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.integers() | st.text(max_size=3),
    lambda inner: st.dictionaries(_keys, inner, max_size=3) | st.lists(inner, max_size=2),
    max_leaves=8,
)


@SETTINGS
@given(
    records=st.lists(st.dictionaries(_keys, _values, max_size=4), max_size=5),
    fields=st.lists(
        st.sampled_from(["a", "b", "a.b", "a.c", "b.a", "a.b.c", "c"]),
        min_size=1,
        max_size=4,
        unique=True,
    ),
)
def test_row_getter_is_lookup(records: list[dict[str, Any]], fields: list[str]) -> None:
    """Every getter (itemgetter, one key, dotted) gives what the reference finds."""
    row = row_getter(fields)
    flat = [f for f in fields if "." not in f]
    for record in records:
        assert row(record) == [lookup(record, f) for f in fields]
        if flat:
            assert row_getter(flat)(record) == [lookup(record, f) for f in flat]


def _csv(columns: tuple[Column, ...], text: bytes, *, by_json: bool) -> bytes:
    sink = _Sink()
    writer = CsvWriter(columns, ExportOptions())
    writer.begin(sink)
    if not by_json or writer.write_json(text) is None:
        writer.write_records(decode_batch(text).records)
    writer.finish()
    return bytes(sink.data)


class _Sink:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes | memoryview) -> int:
        self.data += data
        return len(data)


@pytest.mark.parametrize("by_json", [True, False])
@pytest.mark.parametrize("width", [1, 3])
def test_csv_writes_nested_fields(by_json: bool, width: int) -> None:
    """A nested column's cell is the walked value; the label heads it."""
    columns = (
        Column("customer.name", "Customer"),
        Column.named("id"),
        Column("customer.address", "Address"),
    )[:width]
    text = (
        b'[{"id": 1, "customer": {"name": "Ada", "address": {"city": "Paris"}}},'
        b' {"id": 2, "customer.name": "dotted key"}, {"id": 3, "customer": [1]}]'
    )
    out = _csv(columns, text, by_json=by_json)
    if width == 1:
        assert out == b'Customer\r\nAda\r\ndotted key\r\n""\r\n'
    else:
        assert out == (
            b'Customer,id,Address\r\nAda,1,"{""city"":""Paris""}"\r\ndotted key,2,\r\n,3,\r\n'
        )
