"""The C paths for dotted fields and for JSON Lines, held to the Python reference.

`consumer/fields.py` finds a field (the exact key, else a walk by its dots) and the
Python writers write what it finds; `format_json` (CSV rows), `format_rows` (rows from
decoded records) and `format_jsonl` (lines) must write the same bytes wherever they take
the text, and take the common cases.
"""

from __future__ import annotations

import io
import random
from dataclasses import replace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from consumer._csvrows import format_jsonl, format_rows
from consumer.batches import decode_batch
from consumer.structs import Column, ExportOptions
from consumer.writers.csv import CsvWriter
from consumer.writers.csv_columns import ColumnFormatter
from consumer.writers.jsonl import JsonlWriter
from tests.json_strategies import SETTINGS, messages, scalars
from tests.test_csv_json import assert_same_or_declined, mutate, python_path

_keys = st.sampled_from(
    [('"a"', "a"), ('"b"', "b"), ('"c"', "c"), ('"a.b"', "a.b"), ('"b.c"', "b.c"),
     ('"\\u0061"', "a")]
)  # fmt: skip
_ws = st.sampled_from(["", " ", "\n"])


def _object(members: list[tuple[tuple[str, str], tuple[str, Any], str]]) -> tuple[str, Any]:
    text = "{" + ",".join(f"{ws}{k}{ws}:{ws}{t}" for (k, _), (t, _), ws in members) + "}"
    value: dict[str, Any] = {}
    for (_, key), (_, member), _ in members:
        value[key] = member
    return text, value


def _array(items: list[tuple[tuple[str, Any], str]]) -> tuple[str, Any]:
    return "[" + ",".join(ws + t for (t, _), ws in items) + "]", [v for (_, v), _ in items]


nested = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(st.tuples(_keys, inner, _ws), max_size=4).map(_object),
        st.lists(st.tuples(inner, _ws), max_size=3).map(_array),
    ),
    max_leaves=10,
)
nested_records = st.lists(st.tuples(_keys, nested, _ws), max_size=5).map(_object)
nested_batches = st.lists(nested_records, min_size=1, max_size=4).map(
    lambda drawn: "[" + ",".join(t for t, _ in drawn) + "]"
)
fields = st.lists(
    st.sampled_from(["a", "b", "c", "a.b", "a.c", "a.b.c", "b.c", "c.a", "a.a"]),
    min_size=1,
    max_size=4,
    unique=True,
)


def jsonl_reference(text: bytes, columns: tuple[str, ...]) -> bytes:
    """The reference: the decoder's records, written by the Python JSON Lines writer."""
    sink = io.BytesIO()
    writer = JsonlWriter(columns)
    writer.begin(sink)
    writer.write_records(decode_batch(text).records)
    return sink.getvalue()


def jsonl_same_or_declined(text: bytes, columns: tuple[str, ...]) -> bool:
    batch = decode_batch(text)
    written = format_jsonl(text, columns, JsonlWriter(columns)._prefixes)
    if batch.bad:
        assert written is None, text
        return False
    if written is None:
        return False
    assert written == (jsonl_reference(text, columns), len(batch.records)), text
    return True


@SETTINGS
@given(nested_batches, fields, st.booleans(), st.data())
def test_dotted_fields_in_c_are_the_reference(text, columns, escape, data):
    """Generated nested records (dotted keys, repeated keys, arrays and scalars in the
    path, escaped keys) under dotted fields: every C path writes the reference's bytes or
    declines; the column formatter always writes them. Mutated, C still declines what
    the decoder refuses."""
    raw, cols = text.encode(), tuple(columns)
    options = ExportOptions(escape_formulas=escape)
    jsonl_same_or_declined(raw, cols)
    rng = random.Random(data.draw(st.integers(0, 2**32)))  # noqa: S311 - test data
    jsonl_same_or_declined(mutate(raw, rng), cols)
    if len(cols) < 2:
        return
    assert_same_or_declined(raw, cols, options)
    assert_same_or_declined(mutate(raw, rng), cols, options)
    records = decode_batch(raw).records
    expected = python_path(raw, cols, options)
    assert format_rows(records, cols, ",", escape) in (None, expected)
    assert ColumnFormatter(cols, ",", escape_formulas=escape).format(records) == expected.decode()


@SETTINGS
@given(messages, st.data())
def test_lines_from_any_text_are_the_reference(drawn, data):
    """Generated batches (numbers of every spelling, strings with every escape): C's
    lines are the reference's or it declines."""
    raw = drawn[0].encode()
    jsonl_same_or_declined(raw, ("a", "b"))
    jsonl_same_or_declined(raw, ("b",))
    rng = random.Random(data.draw(st.integers(0, 2**32)))  # noqa: S311 - test data
    jsonl_same_or_declined(mutate(raw, rng), ("a", "b"))


COMMON = (
    b'[{"id": 1, "customer": {"name": "Zo\\u00eb \\"Z\\"", "address": {"city": "Paris"}},'
    b' "amount": 1E5, "tags": ["x"]},'
    b' {"id": 2, "customer": {"name": "=x()", "address": null}, "amount": -0.10},'
    b' {"id": 3, "customer.name": "dotted key", "customer": [1]}]'
)
FIELDS = ("id", "customer.name", "customer.address.city", "amount")


def test_c_takes_the_common_nested_case():
    """Nested objects of scalars, a null and an array in the path, an exact dotted key:
    C takes them all (no fallback to Python) and writes the reference's bytes."""
    options = ExportOptions()
    assert assert_same_or_declined(COMMON, FIELDS, options)
    assert jsonl_same_or_declined(COMMON, FIELDS)
    rows = format_rows(decode_batch(COMMON).records, FIELDS, ",", True)
    assert rows == python_path(COMMON, FIELDS, options)
    assert rows == (b'1,"Zo\xc3\xab ""Z""",Paris,1E5\r\n2,\'=x(),,-0.10\r\n3,dotted key,,\r\n')


def test_the_writers_use_c_for_nested_columns():
    """CsvWriter and JsonlWriter write a nested request from the text in C."""
    columns = [Column("customer.name", "Name"), Column.named("id")]
    csv_writer = CsvWriter(columns, replace(ExportOptions(), header=False))
    csv_writer.begin(io.BytesIO())
    assert csv_writer.write_json(COMMON) == 3
    lines = JsonlWriter(columns)
    sink = io.BytesIO()
    lines.begin(sink)
    assert lines.write_json(COMMON) == 3
    assert sink.getvalue() == (
        b'{"Name":"Zo\xc3\xab \\"Z\\"","id":1}\n{"Name":"=x()","id":2}\n'
        b'{"Name":"dotted key","id":3}\n'
    )
