"""The decoder keeps every number's text and is as strict as orjson; nested values are
written back as compact JSON with their numbers as written."""

from __future__ import annotations

import math
import re
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumer.json_text import JsonNumber, _compact_json_by_hand, compact_json, loads
from tests.json_strategies import SETTINGS, messages, number_text, typed, values


@SETTINGS
@given(values)
def test_every_number_and_string_decodes_as_written(drawn):
    """Numbers of every spelling come out as their exact text, strings with every escape
    as their characters."""
    text, expected = drawn
    assert typed(loads(text.encode())) == typed(expected)


def _mutated(text: bytes, data: st.DataObject) -> bytes:
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        byte = data.draw(st.sampled_from(list(b'"\\{}[],: 0-.eE+\x00\x1f\x7f\x80\xc3\xed\xffntu/')))
        change = data.draw(st.sampled_from(["replace", "insert", "delete", "truncate"]))
        if change == "truncate":
            text = text[:at]
        else:
            tail = text[at + 1 :] if change in ("replace", "delete") else text[at:]
            text = text[:at] + (b"" if change == "delete" else bytes([byte])) + tail
    return text


def _same_numbers(ours: Any, theirs: Any) -> bool:
    """The decoded values agree, a number's text standing for orjson's number."""
    if isinstance(ours, JsonNumber):
        if isinstance(theirs, bool):
            return False
        number: float = int(ours) if isinstance(theirs, int) else float(ours)
        return bool(number == theirs)
    if isinstance(ours, dict):
        return (
            isinstance(theirs, dict)
            and list(ours) == list(theirs)
            and all(_same_numbers(ours[k], theirs[k]) for k in ours)
        )
    if isinstance(ours, list):
        return (
            isinstance(theirs, list)
            and len(ours) == len(theirs)
            and all(_same_numbers(a, b) for a, b in zip(ours, theirs, strict=True))
        )
    return type(ours) is type(theirs) and ours == theirs


@SETTINGS
@given(messages, st.data())
def test_the_decoder_is_as_strict_as_orjson(drawn, data):
    """Valid batches, then with bytes changed, added, removed or cut: what orjson reads
    the decoder reads alike, and what orjson refuses the decoder refuses too, with
    orjson's words, but for numbers infinite as doubles (their text is kept instead)."""
    for text in (drawn[0].encode(), _mutated(drawn[0].encode(), data)):
        try:
            theirs = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            refusal = str(exc)
        else:
            assert _same_numbers(loads(text), theirs), text
            continue
        if "infinity" not in refusal:  # else the decoder may read it, keeping the text
            with pytest.raises(ValueError, match=re.escape(refusal)):
                loads(text)


@pytest.mark.parametrize(
    "text",
    [
        b"NaN", b"[Infinity]", b"[-Infinity]", b'{"a": "\\ud800"}', b'["\\udc00\\ud800"]',
        b'{"a": "\\ud800", "a": 1}', b'{"\\udc00": 1, "\\udc00": 2}', b'["\\ud800\\ud800"]',
        b'["\\ud83d x"]', b"\xef\xbb\xbf{}", b'"\xed\xa0\x80"', b"[1]x", b"\xff",
        b"[" * 1025 + b"]" * 1025, b"[1,]", b"01", b"-", b"1.", b".5", b"+1",
    ],
)  # fmt: skip
def test_what_orjson_refuses_is_refused(text):
    """Constants, lone surrogates (in a value a repeated key drops too), a BOM, invalid
    UTF-8, nesting past 1024, bad numbers."""
    with pytest.raises(ValueError, match=r"\w"):
        loads(text)


def test_escaped_backslash_before_u_is_text():
    """`\\\\ud800` is a backslash and the letters ud800, not a surrogate."""
    assert loads(b'["\\\\ud800"]') == ["\\ud800"]


def test_an_integer_past_every_limit_keeps_its_digits():
    """A 5,000-digit integer (past Python's 4,300-digit int() limit) is kept whole."""
    digits = "1234567890" * 500
    decoded = loads(f'{{"n": -{digits}}}'.encode())
    assert decoded["n"] == "-" + digits
    assert isinstance(decoded["n"], JsonNumber)
    assert compact_json(decoded) == f'{{"n":-{digits}}}'


@pytest.mark.parametrize("depth", [1, 254, 255, 1022, 1024])
def test_nesting_orjson_reads_is_read_and_written(depth):
    """Arrays nested as deep as orjson reads (1024) decode, and are written as compact
    JSON past the 254 levels orjson writes."""
    text = b"[" * (depth - 1) + b"[-0, 1.50]" + b"]" * (depth - 1)
    assert compact_json(loads(text)) == text.decode().replace(" ", "")


def test_nesting_past_1024_is_refused_as_orjson_refuses_it():
    """One level past orjson's depth is not JSON: nested too deep, it says."""
    with pytest.raises(ValueError, match=r"nested more than 1,024 levels deep \(depth limit"):
        loads(b'{"a":' + b"[" * 1024 + b"]" * 1024 + b"}")


@SETTINGS
@given(values)
def test_compact_json_keeps_numbers_as_written(drawn):
    """Any value written as compact JSON reads back the same, numbers' text and all."""
    text, _ = drawn
    decoded = loads(text.encode())
    if isinstance(decoded, dict | list):
        assert typed(loads(compact_json(decoded).encode())) == typed(decoded)
        assert _compact_json_by_hand(decoded) == compact_json(decoded)


_plain = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=12,
)


@SETTINGS
@given(_plain)
def test_compact_json_is_orjsons_text(value):
    """Values with no number text are written byte for byte as orjson writes them, by
    orjson and by the writer for values too deep for it."""
    expected = orjson.dumps(value).decode()
    if isinstance(value, dict | list):
        assert compact_json(value) == expected
    assert _compact_json_by_hand(value) == expected


@SETTINGS
@given(number_text)
def test_a_number_is_its_text(text):
    """However a number is spelled, the decoder keeps the spelling (and it is a number)."""
    decoded = loads(f"[{text}]".encode())
    assert decoded == [text]
    assert isinstance(decoded[0], JsonNumber)
    assert not math.isnan(float(decoded[0]))
