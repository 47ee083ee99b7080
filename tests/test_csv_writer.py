"""The CSV rules of the contract, checked on the bytes."""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import replace

import pytest

from consumer._csvrows import format_json, format_rows
from consumer.batches import decode_batch
from consumer.structs import Column, ExportOptions
from consumer.writers.cells import cell_text, escape_formula
from consumer.writers.csv import CsvWriter
from producer_tools.records import COLUMNS, generate
from tests.awkward_records import ALLOWED_DELIMITERS, awkward_batch


def render(records, columns=("a", "b"), **options) -> bytes:
    sink = io.BytesIO()
    writer = CsvWriter(columns, ExportOptions(**options))
    writer.begin(sink)
    writer.write_records(records)
    writer.finish()
    return sink.getvalue()


class TestCsvWriter:
    def test_header_and_crlf(self):
        """Rows end in CRLF and the header row comes first."""
        assert render([{"a": "x", "b": "y"}]) == b"a,b\r\nx,y\r\n"

    def test_labels_head_the_columns(self):
        """A column's label is its heading (formula-escaped like any heading); its field finds
        the value."""
        columns = (Column("a", "Amount, EUR"), Column("b", "=total"))
        out = render([{"a": 1, "b": 2, "Amount, EUR": 9}], columns=columns)
        assert out == b'"Amount, EUR",\'=total\r\n1,2\r\n'

    def test_rfc4180_quoting(self):
        """Delimiters, quotes and line breaks are quoted; quotes are doubled."""
        out = render([{"a": 'say "hi", ok', "b": "two\nlines"}, {"a": "cr\rhere", "b": "plain"}])
        assert out == b'a,b\r\n"say ""hi"", ok","two\nlines"\r\n"cr\rhere",plain\r\n'

    def test_cells_follow_the_json_types(self):
        """Numbers and booleans as JSON writes them, null and missing empty, nested compact."""
        records = [
            {"a": 1.5, "b": True},
            {"a": 10**20, "b": False},
            {"a": 1e300, "b": None},
            {"a": {"k": [1, "é"]}},
            {"a": [1, 2]},
        ]
        assert render(records) == (
            b"a,b\r\n1.5,true\r\n100000000000000000000,false\r\n1e+300,\r\n"
            b'"{""k"":[1,""\xc3\xa9""]}",\r\n"[1,2]",\r\n'
        )

    def test_utf8_and_bom(self):
        """Text is UTF-8; `bom` puts EF BB BF first."""
        assert render([{"a": "Ğüş", "b": "Σ"}], bom=True) == "\ufeffa,b\r\nĞüş,Σ\r\n".encode()

    def test_no_header_and_custom_delimiter(self):
        """`header: false` drops the header; the delimiter is used and quoted when in data."""
        assert render([{"a": "x;y", "b": "z,w"}], header=False, delimiter=";") == b'"x;y";z,w\r\n'

    def test_formula_escaping_on_by_default(self):
        """Strings a spreadsheet would evaluate get a leading quote; JSON numbers never do."""
        records = [{"a": "=1+2", "b": -3}, {"a": "@SUM(A1)", "b": "+1.5"}, {"a": "\tx", "b": "-3"}]
        assert render(records) == b"a,b\r\n'=1+2,-3\r\n'@SUM(A1),+1.5\r\n'\tx,-3\r\n"

    def test_formula_escaping_opt_out(self):
        """`escape_formulas: false` writes strings as they are."""
        assert render([{"a": "=1+2", "b": "@x"}], escape_formulas=False) == b"a,b\r\n=1+2,@x\r\n"

    def test_header_cells_are_written_as_given(self):
        """Column names are the header, quoted like any cell."""
        assert render([], columns=("id", "a,b")) == b'id,"a,b"\r\n'

    def test_formula_like_headings_are_escaped(self):
        """A heading a spreadsheet would evaluate gets the leading quote, plain numbers not."""
        columns = ("=cmd", "+x", "-y", "@z", "\tt", "\rr", "-3", "+1.5", "ok")
        assert render([], columns=columns) == b"'=cmd,'+x,'-y,'@z,'\tt,\"'\rr\",-3,+1.5,ok\r\n"

    def test_headings_are_left_alone_without_escaping(self):
        """`escape_formulas: false` writes the headings as given, as it does the values."""
        assert render([], columns=("=cmd", "@z"), escape_formulas=False) == b"=cmd,@z\r\n"


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("=A1", "'=A1"), ("+A1", "'+A1"), ("-A1", "'-A1"), ("@A1", "'@A1"),
        ("\tA1", "'\tA1"), ("\rA1", "'\rA1"), ("-", "'-"), ("+", "'+"),
        ("-3", "-3"), ("+1.5", "+1.5"), ("-1e5", "-1e5"), ("-.5", "-.5"),
        ("- 3", "'- 3"), ("plain", "plain"), ("", ""), ("a=b", "a=b"),
    ],
)  # fmt: skip
def test_escape_formula(text, escaped):
    """Only formula-looking strings that are not plain numbers are prefixed."""
    assert escape_formula(text) == escaped


EDGE_VALUES = [
    0.0, -0.0, 1e-4, -1e-4, 9.9999e-5, 1e-5, 1e-7, 5e-324, 0.1, 1 / 3, 24038.52, -162.95,
    9.999999999999998e15, 1e16, -1e16, 1e22, 1e300, float(2**53), 0, -1, 10**20, True, False,
    None, "", "plain", "=1+2", "-3", "- 3", "+", "@x", "\tx", "a,b", 'q"q', "é", [1, "a"],
    {"k": {"n": None}},
]  # fmt: skip


@pytest.mark.parametrize("escape", [True, False])
def test_fast_path_writes_what_the_cell_rules_say(escape):
    """Every value kind, at the edges where repr() and JSON notation part, as the slow rules."""
    records = [{"a": value, "b": "x"} for value in EDGE_VALUES] + [{"b": "missing a"}]
    expected = io.StringIO()
    reference = csv.writer(expected, lineterminator="\r\n")
    reference.writerow(["a", "b"])
    for record in records:
        cells = [cell_text(record.get(column)) for column in ("a", "b")]
        if escape:
            cells = [escape_formula(c) if isinstance(record.get(k), str) else c
                     for c, k in zip(cells, ("a", "b"), strict=True)]  # fmt: skip
        reference.writerow(cells)
    assert render(records, escape_formulas=escape).decode() == expected.getvalue()


def _three_ways(columns, options, records) -> tuple[bytes | None, bytes, bytes]:
    """The C formatter's bytes (None where it leaves the batch to Python), the column
    formatter's, and the csv module's."""
    by_column, by_row = io.BytesIO(), io.BytesIO()
    for sink, write in ((by_column, "write_records_by_column"), (by_row, "write_records_by_row")):
        writer = CsvWriter(columns, replace(options, header=False))
        writer.begin(sink)
        getattr(writer, write)(records)
    native = format_rows(records, columns, options.delimiter, options.escape_formulas)
    return native, by_column.getvalue(), by_row.getvalue()


SEEDS = range(40)


@pytest.mark.parametrize("seed", SEEDS)
def test_both_formatters_write_the_csv_modules_bytes(seed):
    """Random batches of every value kind, delimiter and option: the C and the column
    formatter write byte for byte what the csv module writes."""
    rng = random.Random(seed)  # noqa: S311 - test data
    columns = tuple(f"c{i}" for i in range(rng.randrange(2, 6)))
    options = ExportOptions(
        delimiter=rng.choice([",", ";", "\t", "|", " ", "1", ".", "e", "é"]),
        escape_formulas=rng.random() < 0.7,
    )
    for _ in range(10):
        records = awkward_batch(rng, columns)
        native, by_column, by_row = _three_ways(columns, options, records)
        assert by_column == by_row, records
        assert native in (None, by_row), records


def test_the_c_formatter_takes_most_batches_and_all_common_data():
    """Batches of the kinds C takes (awkward strings, ints of any size, booleans, nulls,
    missing keys) go through C, with every delimiter, and match the csv module; and so
    does the generated demo data."""
    taken = total = 0
    for seed in SEEDS:
        rng = random.Random(seed)  # noqa: S311 - test data
        columns = tuple(f"c{i}" for i in range(rng.randrange(2, 6)))
        options = ExportOptions(
            delimiter=rng.choice([",", ";", "\t", "|", " ", "1", ".", "e"]),
            escape_formulas=rng.random() < 0.7,
        )
        for _ in range(10):
            records = awkward_batch(rng, columns, ("str", "int", "bool"))
            native, _, by_row = _three_ways(columns, options, records)
            total += 1
            taken += native is not None
            assert native in (None, by_row), records
    # What C leaves: formula-like strings with non-ASCII text (Python's \d is wider).
    assert taken >= total // 2, (taken, total)
    records = generate(2000)
    native, _, by_row = _three_ways(COLUMNS, ExportOptions(), records)
    assert native == by_row


def test_one_column_rows_quote_an_empty_cell():
    """A one-column row with an empty cell is written `""`, so the row is not blank."""
    assert render([{"a": ""}, {"a": None}, {"a": "x"}], columns=("a",)) == b'a\r\n""\r\n""\r\nx\r\n'


def _delimiter_records(delimiter: str) -> list[dict[str, object]]:
    """Formula-like strings, the delimiter and quotes inside values, numbers, booleans."""
    return [
        {"a": "=x", "b": "y"},
        {"a": "-A1" + delimiter, "b": f"q{delimiter}'\""},
        {"a": "'kept", "b": "@sum"},
        {"a": "-3", "b": "+1.5e3"},
        {"a": 12, "b": -7},
        {"a": True, "b": False},
        {"a": None, "b": ""},
        {"a": "\tx", "b": "plain"},
    ]


def _csv_module_rows(records, delimiter: str, escape: bool) -> bytes:
    """The reference: the cell rules' texts, quoted by the csv module."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    for record in records:
        cells = [cell_text(record.get(c)) for c in ("a", "b")]
        if escape:
            cells = [escape_formula(t) if isinstance(record.get(c), str) else t
                     for t, c in zip(cells, ("a", "b"), strict=True)]  # fmt: skip
        writer.writerow(cells)
    return out.getvalue().encode()


@pytest.mark.parametrize("escape", [True, False])
@pytest.mark.parametrize("delimiter", ALLOWED_DELIMITERS)
def test_every_delimiter_quotes_the_cell_as_written(delimiter, escape):
    """With any delimiter, `'` included, every formatter quotes a cell by its text as
    written (formula prefix and all), so the rows read back as the cells: no shifted
    column, no bare formula."""
    records = _delimiter_records(delimiter)
    expected = _csv_module_rows(records, delimiter, escape)
    options = ExportOptions(delimiter=delimiter, escape_formulas=escape)
    native, by_column, by_row = _three_ways(("a", "b"), options, records)
    assert (native, by_column, by_row) == (expected, expected, expected)
    text = json.dumps(records).encode()
    assert format_json(text, ("a", "b"), delimiter, escape) == (expected, len(records))
    read = list(csv.reader(io.StringIO(expected.decode(), newline=""), delimiter=delimiter))
    assert read[0] == (["'=x", "y"] if escape else ["=x", "y"])


def test_apostrophe_delimiter_quotes_the_escaped_formula():
    """The issue's case: `'` as delimiter and an escaped formula is `"'=x"'y`."""
    assert render([{"a": "=x", "b": "y"}], header=False, delimiter="'") == b"\"'=x\"'y\r\n"


def test_an_empty_first_cell_is_written_empty():
    """An empty string as a batch's first cell writes nothing before the delimiter (the
    case that passed NULL to memcpy: scripts/sanitize fails on it without the fix)."""
    assert format_rows([{"a": "", "b": 1}], ("a", "b"), ",", True) == b",1\r\n"
    assert format_json(b'[{"a": "", "b": 1}]', ("a", "b"), ",", True) == (b",1\r\n", 1)


def _fallback(text: bytes, columns=("a", "b"), **options) -> tuple[bytes, bytes, bytes | None]:
    """What the path for messages C leaves writes: the decoder's records, through the
    column formatter, the csv module's rows, and the C formatter (None where it declines)."""
    records = decode_batch(text).records
    native, by_column, by_row = _three_ways(columns, ExportOptions(**options), records)
    assert by_column == by_row
    return by_row, render(records, columns, header=False, **options), native


NUMBER_TEXTS = [
    "18446744073709551616", "-9223372036854775809", "123456789012345678901234567890",
    "0.10000000000000000001", "1E5", "1e-7", "1.50", "-0", "-0.0", "1e400", "5" * 5000,
]  # fmt: skip


@pytest.mark.parametrize("number", NUMBER_TEXTS)
def test_decoded_numbers_are_written_as_their_text(number):
    """Every formatter writes a decoded number digit for digit as the message spells it,
    at the top of a cell and inside nested JSON (a 5,000-digit integer and 1e400 too)."""
    text = f'{{"a": {number}, "b": [{number}, {{"n": {number}}}]}}'.encode()
    expected = f'{number},"[{number},{{""n"":{number}}}]"\r\n'.encode()
    by_row, written, _ = _fallback(text)
    assert by_row == written == expected
    flat = f'[{{"a": {number}, "b": "x"}}, {{"a": null, "b": {number}}}]'.encode()
    assert _fallback(flat) == (f"{number},x\r\n,{number}\r\n".encode(),) * 3
    assert cell_text(decode_batch(text).records[0]["b"]) == f'[{number},{{"n":{number}}}]'


@pytest.mark.parametrize("depth", [254, 255, 1022])
def test_deeply_nested_values_are_written_whole(depth):
    """A value nested deeper than orjson writes (254) but no deeper than it reads is
    written as compact JSON, its numbers as written."""
    text = b'{"a":' + b"[" * depth + b"1E5,-0" + b"]" * depth + b',"b":1}'
    cell = b"[" * depth + b"1E5,-0" + b"]" * depth
    assert _fallback(text)[:2] == (b'"' + cell + b'",1\r\n',) * 2


def test_a_value_too_deep_to_decode_is_a_bad_record():
    """Nested past 1024 levels the message is a bad record that says it is nested too deep."""
    batch = decode_batch(b'{"a":' + b"[" * 1024 + b"]" * 1024 + b',"b":1}')
    assert (batch.records, batch.bad) == ([], 1)
    assert batch.problem is not None
    assert "nested more than 1,024 levels deep" in batch.problem
