"""CSV rows straight from JSON text (format_json) write what decoding it (numbers as
their text) and formatting the records writes, and leave to Python every text the decoder
refuses (orjson's strictness: tests/test_json_text.py)."""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import replace
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumer._csvrows import format_json, format_rows
from consumer.batches import decode_batch
from consumer.json_text import JsonNumber, loads
from consumer.structs import ExportOptions
from consumer.writers.cells import FORMULA_START_CHARS, PLAIN_NUMBER
from consumer.writers.csv import CsvWriter
from consumer.writers.csv_columns import ColumnFormatter
from producer_tools.records import COLUMNS, generate
from tests.awkward_records import ALL_KINDS, ALLOWED_DELIMITERS, awkward_batch, awkward_text
from tests.json_strategies import SETTINGS, messages, typed

DELIMITERS = [",", ";", "\t", "|", " ", "1", ".", "e", "t", "n"]


def python_path(text: bytes, columns: tuple[str, ...], options: ExportOptions) -> bytes:
    """The reference: the service's decoder's records (numbers as their text), written by
    the csv module."""
    records = decode_batch(text).records
    sink = io.BytesIO()
    writer = CsvWriter(columns, replace(options, header=False, bom=False))
    writer.begin(sink)
    writer.write_records_by_row(records)
    return sink.getvalue()


def c_path(
    text: bytes, columns: tuple[str, ...], options: ExportOptions
) -> tuple[bytes, int] | None:
    return format_json(text, columns, options.delimiter, options.escape_formulas)


def assert_same_or_declined(text: bytes, columns: tuple[str, ...], options: ExportOptions) -> bool:
    """C's rows equal the reference wherever C takes the text; whether it took it."""
    batch = decode_batch(text)
    if batch.bad:  # not JSON, or bad records: Python names or counts them
        assert c_path(text, columns, options) is None, text
        return False
    written = c_path(text, columns, options)
    if written is None:
        return False
    assert written == (python_path(text, columns, options), len(batch.records)), text
    return True


def _number_text(value: float, rng: random.Random) -> str:
    """A number as some writer other than orjson might spell it."""
    text = json.dumps(value)
    if isinstance(value, float) and "e" not in text and rng.random() < 0.5:
        return text + "0" * rng.randrange(1, 4)  # trailing zeros: the same float
    if value == 0 and isinstance(value, int) and rng.random() < 0.5:
        return "-0"
    return text


def _string_text(value: str, rng: random.Random) -> str:
    text = json.dumps(value, ensure_ascii=rng.random() < 0.1)
    return text.replace("/", "\\/") if rng.random() < 0.3 else text


def _ws(rng: random.Random) -> str:
    return rng.choice(["", "", "", " ", "\n  ", "\t", "\r\n"])


def _value_text(value: Any, rng: random.Random) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return _number_text(value, rng)
    if isinstance(value, str):
        return _string_text(value, rng)
    return json.dumps(value, separators=(rng.choice([",", ", "]), rng.choice([":", ": "])))


EXTRA_VALUES = [
    {"deep": [{"x": [1, 2.5, None]}, "s\\t"]}, [], {}, "ignored", 12345678901234567890123,
    -1.5, 1e300, True, None, "\u00e9\u2713", [[[[]]]],
]  # fmt: skip
EXTRA_NUMBERS = [
    "1e308", "9e307", "99e307", "1" + "0" * 400 + "e-10", "1" + "0" * 300 + "e-3", "1e-400",
    "0e999", "-0.0e0", "1E+2", "1" * 301, "1" * 300, "2e0308", "1e-0400", "0.5e309",
]  # fmt: skip
"""Number spellings at the edges of overflow and length, for keys no column asks for:
orjson fails on some (infinity), and C must decline at least those."""


def json_text(records: list[dict[str, Any]], rng: random.Random, *, edges: bool = True) -> bytes:
    """The records as JSON spelled many ways: whitespace, key order, repeated keys (the
    last counts), keys no column asks for (with `edges`, numbers at the edge of overflow
    too), escapes, trailing zeros."""
    if rng.random() < 0.3:
        return json.dumps(records, ensure_ascii=False).encode()
    objects = []
    for record in records:
        members = [(key, _value_text(value, rng)) for key, value in record.items()]
        rng.shuffle(members)
        if members and rng.random() < 0.2:  # a decoy first: the repeated key's last wins
            key = rng.choice(members)[0]
            members.insert(0, (key, json.dumps("decoy")))
        if rng.random() < 0.3:
            extra = json.dumps(rng.choice(EXTRA_VALUES))
            extra = rng.choice(EXTRA_NUMBERS) if edges and rng.random() < 0.3 else extra
            members.insert(rng.randrange(len(members) + 1), ("extra", extra))
        body = ",".join(
            f"{_ws(rng)}{json.dumps(k)}{_ws(rng)}:{_ws(rng)}{v}{_ws(rng)}" for k, v in members
        )
        objects.append("{" + body + "}")
    text = _ws(rng) + "[" + ",".join(_ws(rng) + o + _ws(rng) for o in objects) + "]" + _ws(rng)
    if len(objects) == 1 and rng.random() < 0.3:
        text = objects[0]  # one object is one record
    return text.encode()


def random_options(rng: random.Random) -> ExportOptions:
    return ExportOptions(delimiter=rng.choice(DELIMITERS), escape_formulas=rng.random() < 0.7)


SEEDS = range(40)


@pytest.mark.parametrize("seed", SEEDS)
def test_rows_from_json_text_are_the_decoded_records_rows(seed):
    """Random records of every kind, spelled many ways: C's rows are the reference's."""
    rng = random.Random(seed)  # noqa: S311 - test data
    columns = tuple(f"c{i}" for i in range(rng.randrange(2, 6)))
    options = random_options(rng)
    for _ in range(15):
        assert_same_or_declined(json_text(awkward_batch(rng, columns), rng), columns, options)


def common_batch(rng: random.Random, columns: tuple[str, ...]) -> list[dict[str, Any]]:
    """Awkward strings, integers to the 64-bit edges, floats in fixed notation, booleans,
    nulls and missing keys: what exports mostly hold."""
    makers = [
        lambda: awkward_text(rng),
        lambda: rng.choice([0, -1, rng.randrange(-(10**9), 10**9), -(2**63), 2**64 - 1]),
        lambda: round(rng.uniform(-1e6, 1e6), rng.randrange(7)),
        lambda: rng.choice([0.0, -0.0, 0.5, 1e-4, 1e15]),
        lambda: rng.random() < 0.5,
        lambda: None,
    ]
    return [
        {c: rng.choice(makers)() for c in columns if rng.random() < 0.9}
        for _ in range(rng.randrange(1, 40))
    ]


def formula_like_non_ascii(records: list[dict[str, Any]]) -> bool:
    return any(
        isinstance(v, str) and v[:1] in FORMULA_START_CHARS and not v.isascii()
        for record in records
        for v in record.values()
    )


def test_c_takes_the_common_texts():
    """The common values, however spelled, go through C, all but formula-like strings
    with non-ASCII text (Python's \\d matches other digits); so do the demo records."""
    taken = total = 0
    for seed in SEEDS:
        rng = random.Random(seed)  # noqa: S311 - test data
        columns = tuple(f"c{i}" for i in range(rng.randrange(2, 6)))
        options = random_options(rng)
        for _ in range(10):
            records = common_batch(rng, columns)
            declined = options.escape_formulas and formula_like_non_ascii(records)
            text = json_text(records, rng, edges=False)
            assert assert_same_or_declined(text, columns, options) is not declined, text
            total += 1
            taken += not declined
    assert taken >= total // 2, (taken, total)  # the test saw both sides
    records = generate(2000)
    written = format_json(orjson.dumps(records), COLUMNS, ",", True)
    assert written == (python_path(orjson.dumps(records), COLUMNS, ExportOptions()), 2000)


MUTATION_BYTES = [
    b'"', b"\\", b"{", b"}", b"[", b"]", b",", b":", b" ", b"0", b"-", b".", b"e", b"E",
    b"+", b"\x00", b"\x1f", b"\x7f", b"\x80", b"\xc3", b"\xe0", b"\xed", b"\xf4", b"\xff",
    b"n", b"t", b"u", b"/",
]  # fmt: skip


def mutate(text: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(text) + 1)
    change = rng.choice(["replace", "insert", "delete", "truncate"])
    if change == "truncate":
        return text[:at]
    tail = text[at + 1 :] if change in ("replace", "delete") else text[at:]
    return text[:at] + (b"" if change == "delete" else rng.choice(MUTATION_BYTES)) + tail


@pytest.mark.parametrize("seed", range(20))
def test_what_the_decoder_refuses_c_leaves_to_python(seed):
    """Valid texts with a byte changed, added, removed or cut: where the decoder fails, C
    declines (so the decoder names the error); where it reads the text, C writes its rows
    or declines."""
    rng = random.Random(1000 + seed)  # noqa: S311 - test data
    columns = ("c0", "c1", "c2")
    options = random_options(rng)
    for _ in range(40):
        text = json_text(awkward_batch(rng, columns, ALL_KINDS), rng)
        for _ in range(rng.randrange(1, 4)):
            text = mutate(text, rng)
        assert_same_or_declined(text, columns, options)


@pytest.mark.parametrize(
    "text",
    [
        b'[{"a": "\\ud800"}]',  # a lone surrogate (orjson fails)
        b'[{"a": "\\ud83d\\u0041"}]',  # a high surrogate without its low half
        b'[{"a": 1e400}]',  # infinite as a double: orjson refuses it, Python decides
        b'[{"a": 1, "x": 1e400}]',  # a skipped number that may overflow
        b'[{"a": 1, "x": 1e-5.0}]',
        b'[{"a": 1, "x": 1' + b"0" * 400 + b"e-10}]",  # 1e390: infinity, orjson fails
        b'[{"a": 1, "x": 99e307}]',
        b'[{"a": 1, "x": ' + b"1" * 301 + b"}]",  # a long number, no exponent
        b'[{"a": ' + b"1" * 301 + b"}]",  # a long number: might be infinite
        b'[{"a": [1]}]',  # a nested column value: orjson's compact text
        b'[{"a": {"b": 1}}]',
        b'[{"a\\u0062": 1}]',  # a key with an escape
        b'[{"a": 1}, 2]',  # an item that is not an object: a bad record
        b'"text"',
        b"[" * 70 + b"]" * 70,  # deeper than C goes
        b'[{"a": 1, "x": ' + b"[" * 70 + b"]" * 70 + b"}]",
        b'[{"a": "=\xc3\xa9"}]',  # formula-like with non-ASCII text
    ],
)
def test_outside_the_subset_c_declines(text):
    """Texts C does not take: the worker decodes them instead (tests/test_csv_lanes.py)."""
    assert format_json(text, ("a", "b"), ",", True) is None


def test_one_column_and_repeated_columns_are_left_to_python():
    """One column (the csv module quotes its empty cell) and a repeated column name."""
    text = b'[{"a": "", "b": 1}]'
    assert format_json(text, ("a",), ",", True) is None
    assert format_json(text, ("a", "a"), ",", True) is None
    assert format_json(text, ("a", "b"), "\u00e9", True) is None  # a non-ASCII delimiter


def _number_like(rng: random.Random) -> str:
    """Number-like text, mostly valid: long mantissas, exponents near overflow and past
    it; now and then a sign, a leading zero or a missing digit JSON does not allow."""
    if rng.random() < 0.1:
        return rng.choice(["+1", "01", "-", ".5", "1.", "1e", "1e+", "00", "-01.5"])
    digits = rng.choice([rng.randrange(1, 20), rng.randrange(290, 330)])
    whole = rng.choice(["0", "1", str(rng.randrange(10**6)), "9" * digits])
    fraction = rng.choice(["", "", ".5", "." + "0" * rng.randrange(320) + "7"])
    exponent = rng.choice(
        ["", "", "E5", f"e{rng.randrange(280, 330)}", f"e-{rng.randrange(40)}",
         f"e+{rng.randrange(400)}", f"e-{rng.randrange(400)}", "e000001"]
    )  # fmt: skip
    return rng.choice(["", "-"]) + whole + fraction + exponent


def _string_like(rng: random.Random) -> str:
    """A string, mostly valid: escapes of every kind, non-ASCII text; now and then a
    lone surrogate, a bad escape or a control character."""
    valid = ["a", "é", ",", "\\n", "\\u00e9", "\\ud83d\\ude00", "\\/", '\\"', "\U0010ffff", "\x7f"]
    # The last two are raw surrogates: UTF-8 cannot hold them (the text is encoded with
    # "surrogatepass").
    invalid = ["\\ud83d", "\\udc00", "\\x", "\\u12", "\\uZZZZ", "\x01", "\t", "\ud800", "\udfff"]
    pieces = [
        rng.choice(invalid if rng.random() < 0.03 else valid) for _ in range(rng.randrange(8))
    ]
    return '"' + "".join(pieces) + '"'


def _value_like(rng: random.Random, depth: int = 0) -> str:
    """Any JSON-like value, mostly valid, nested up to 70 deep."""
    kind = rng.randrange(8 if depth < 70 else 5)
    if kind in (0, 1):
        return _number_like(rng)
    if kind in (2, 3):
        return _string_like(rng)
    if kind == 4:
        return rng.choice(["true", "false", "null"] * 5 + ["tru", "truex", "NaN", "-Infinity"])
    items = [_value_like(rng, depth + 1) for _ in range(rng.randrange(3))]
    ending = rng.choice(["", ","]) if rng.random() < 0.05 else ""
    if kind in (5, 6):
        return "[" + ",".join(items) + ending + "]"
    return "{" + ",".join(_string_like(rng) + ":" + item for item in items) + ending + "}"


@pytest.mark.parametrize("seed", range(10))
def test_arbitrary_values_beside_the_columns(seed):
    """Records whose columns and other keys hold arbitrary JSON-like text, mostly valid:
    wherever the decoder fails C declines, and wherever C writes, it writes the
    reference's rows."""
    rng = random.Random(2000 + seed)  # noqa: S311 - test data
    for _ in range(300):
        members = [
            f'"{column}":' + rng.choice([_number_like(rng), _string_like(rng), "true", "12"])
            for column in ("a", "b")
            if rng.random() < 0.8
        ]
        members += [f'"x{rng.randrange(3)}":' + _value_like(rng) for _ in range(rng.randrange(3))]
        rng.shuffle(members)
        text = ("[{" + ",".join(members) + "}]").encode("utf-8", "surrogatepass")
        for delimiter in (",", "1", "t"):
            assert_same_or_declined(text, ("a", "b"), ExportOptions(delimiter=delimiter))


NUMBER_TEXTS = [
    "18446744073709551616", "-9223372036854775809", "123456789012345678901234567890",
    "0.10000000000000000001", "1E5", "1e+5", "1.50", "-0", "-0.0", "0.00001", "1e-400",
    "1234567890123456.5", "5e-324", "1.5e300", "-1.5E-3",
]  # fmt: skip


@pytest.mark.parametrize("number", NUMBER_TEXTS)
def test_numbers_are_copied_as_written(number):
    """A number's cell is its text in the message, digit for digit, in C as in Python."""
    text = f'[{{"a": {number}, "b": [{number}, {{"n": {number}}}]}}]'.encode()
    expected = f'{number},"[{number},{{""n"":{number}}}]"\r\n'.encode()
    assert python_path(text, ("a", "b"), ExportOptions()) == expected
    assert format_json(b'[{"a": %s, "b": 1}]' % number.encode(), ("a", "b"), ",", True) == (
        f"{number},1\r\n".encode(),
        1,
    )


@pytest.mark.parametrize("delimiter", list("0123456789-+.eE"))
def test_numbers_holding_the_delimiter_are_quoted(delimiter):
    """With a digit, sign, point or exponent mark as the delimiter, a number holding it
    is quoted, and reads back as its text."""
    text = b'[{"a": -12.5e+30, "b": 1234567890.0E-9}]'
    rows = python_path(text, ("a", "b"), ExportOptions(delimiter=delimiter))
    assert format_json(text, ("a", "b"), delimiter, True) == (rows, 1)
    read = list(csv.reader(io.StringIO(rows.decode(), newline=""), delimiter=delimiter))
    assert read == [["-12.5e+30", "1234567890.0E-9"]]


def _expected_cell(value: Any, escape: bool) -> Any:
    """A cell as the contract describes it, read back: nested values decoded again."""
    if isinstance(value, dict | list):
        return typed(value)
    if isinstance(value, JsonNumber) or not isinstance(value, str):
        return {None: "", True: "true", False: "false"}.get(value, value)  # type: ignore[arg-type]
    formula = value[:1] in FORMULA_START_CHARS and not PLAIN_NUMBER.fullmatch(value)
    return "'" + value if escape and formula else value


def _read_cell(cell: str, value: Any) -> Any:
    return typed(loads(cell.encode())) if isinstance(value, dict | list) else cell


@SETTINGS
@given(messages, st.sampled_from([*ALLOWED_DELIMITERS, "\u00e9"]), st.booleans(), st.data())
def test_generated_batches_are_written_as_the_cell_rules_say(drawn, delimiter, escape, data):
    """Generated batches (numbers of every spelling, strings with every escape, nesting,
    escaped keys) with every delimiter: C writes the reference's rows or declines; the C
    and column formatters write the csv module's rows from the decoded records; and every
    cell reads back as the contract's cell rules say. Mutated, C still declines what the
    decoder refuses."""
    text, batch = drawn[0].encode(), drawn[1]
    columns = ("a", "b")
    options = ExportOptions(delimiter=delimiter, escape_formulas=escape)
    assert_same_or_declined(text, columns, options)
    records = decode_batch(text).records
    expected = python_path(text, columns, options)
    assert format_rows(records, columns, delimiter, escape) in (None, expected)
    assert ColumnFormatter(columns, delimiter, escape_formulas=escape).format(records) == (
        expected.decode()
    )
    read = list(csv.reader(io.StringIO(expected.decode(), newline=""), delimiter=delimiter))
    assert len(read) == len(batch)
    for row, record in zip(read, batch, strict=True):
        cells = [_read_cell(cell, record.get(c)) for cell, c in zip(row, columns, strict=True)]
        assert cells == [_expected_cell(record.get(c), escape) for c in columns]
    rng = random.Random(data.draw(st.integers(0, 2**32)))  # noqa: S311 - test data
    assert_same_or_declined(mutate(text, rng), columns, options)
