"""Hypothesis strategies for JSON text spelled every way, with the value it stands for.

Each strategy draws `(text, value)`: the JSON text and the value the service's decoder
must make of it, numbers as `JsonNumber` holding their exact text.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from consumer.json_text import JsonNumber

SETTINGS = settings(
    deadline=None,  # a loaded CI machine is no failure
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

Drawn = tuple[str, Any]

_digits = st.text("0123456789", min_size=1, max_size=30)
_whole = st.one_of(
    st.just("0"),
    st.builds(lambda d, rest: d + rest, st.sampled_from("123456789"), st.text("0123456789")),
    st.integers(min_value=1, max_value=6000).map(lambda n: "9" * n),  # past every limit
)
_fraction = st.one_of(st.just(""), _digits.map(lambda d: "." + d))
_exponent = st.one_of(
    st.just(""),
    st.builds(
        lambda e, sign, d: e + sign + d,
        st.sampled_from("eE"),
        st.sampled_from(["", "+", "-"]),
        st.text("0123456789", min_size=1, max_size=4),
    ),
)
number_text = st.builds(
    lambda sign, whole, fraction, exponent: sign + whole + fraction + exponent,
    st.sampled_from(["", "-"]),
    _whole,
    _fraction,
    _exponent,
)
"""A JSON number of any spelling: -0, long mantissas, exponents of any size, huge ints."""


def numbers() -> st.SearchStrategy[Drawn]:
    return number_text.map(lambda text: (text, JsonNumber(text)))


_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _spell(char: str, style: int) -> str:
    """One character as JSON may spell it: as it is, its short escape, \\u escapes."""
    code = ord(char)
    if style == 1 and char in _SHORT:
        return _SHORT[char]
    if style == 1 and char == "/":
        return "\\/"
    if style == 2 or code < 0x20 or char in _SHORT:
        if code > 0xFFFF:
            high, low = 0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)
            return f"\\u{high:04x}\\u{low:04X}"
        return f"\\u{code:04x}" if style != 1 else f"\\u{code:04X}"
    return char


_chars = st.characters(exclude_categories=["Cs"])  # a lone surrogate is no JSON string
strings = st.lists(st.tuples(_chars, st.integers(0, 2)), max_size=12).map(
    lambda spelled: (
        '"' + "".join(_spell(c, style) for c, style in spelled) + '"',
        "".join(c for c, _ in spelled),
    )
)
"""A string with every kind of character and escape."""

_ws = st.sampled_from(["", "", "", " ", "\n", "\t", "\r\n  "])
scalars = st.one_of(
    numbers(),
    strings,
    st.sampled_from([("true", True), ("false", False), ("null", None)]),
)


def _array(items: list[tuple[Drawn, str]]) -> Drawn:
    text = "[" + ",".join(ws + t + ws for (t, _), ws in items) + "]"
    return text, [v for (_, v), _ in items]


def _object(members: list[tuple[Drawn, Drawn, str]]) -> Drawn:
    text = "{" + ",".join(f"{ws}{k}{ws}:{ws}{t}" for (k, _), (t, _), ws in members) + "}"
    value: dict[str, Any] = {}
    for (_, key), (_, member), _ in members:
        value[key] = member  # a repeated key: the last one counts
    return text, value


def _containers(children: st.SearchStrategy[Drawn]) -> st.SearchStrategy[Drawn]:
    return st.one_of(
        st.lists(st.tuples(children, _ws), max_size=4).map(_array),
        st.lists(st.tuples(strings, children, _ws), max_size=4).map(_object),
    )


values = st.recursive(scalars, _containers, max_leaves=12)
"""Any JSON value, nested a few levels."""

_column_keys = st.sampled_from(['"a"', '"b"', '"x"', '"\\u0061"'])


def _record(members: list[tuple[str, Drawn]]) -> Drawn:
    text = "{" + ",".join(f"{key}:{t}" for key, (t, _) in members) + "}"
    value = {}
    for key, (_, member) in members:
        value[key.strip('"').replace("\\u0061", "a")] = member
    return text, value


records = st.lists(st.tuples(_column_keys, values), max_size=4).map(_record)
"""A record of columns `a` and `b` and a key no column asks for, any values."""

messages = st.lists(records, min_size=1, max_size=5).map(
    lambda drawn: ("[" + ",".join(t for t, _ in drawn) + "]", [v for _, v in drawn])
)
"""A batch: a JSON array of records."""


def typed(value: Any) -> Any:
    """The value with each number and string marked as such (JsonNumber == str)."""
    if isinstance(value, JsonNumber):
        return ("number", str(value))
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, dict):
        return {key: typed(member) for key, member in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    return value
