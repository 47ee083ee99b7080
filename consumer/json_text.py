"""JSON whose numbers keep their text: reading source messages, writing nested cells.

orjson makes a float or a 64-bit int of every number, and a float cannot hold
`18446744073709551616` or `0.10000000000000000001`, nor tell `1.50` from `1.5`; the
contract says a number is written exactly as its text in the message. So records are
decoded by the stdlib's decoder, which hands each number's text to `JsonNumber`, and made
to accept what orjson accepts (a number of any size or exponent aside: its text is kept,
never made into a float, so it cannot overflow).
"""

from __future__ import annotations

import json
import re
import sys
import threading
from typing import Any

import orjson

MAX_DEPTH = 1024
"""Arrays and objects nest at most this deep, as orjson reads them."""


class JsonNumber(str):
    """A JSON number, as its text in the message: `1E5`, `-0`, `18446744073709551616`.

    A `str`, so every text output (CSV and PDF cells, nested JSON) writes it as it is and
    formula escaping never touches it (a JSON number is always a plain number). Its own
    type, so a format that stores numbers as numbers (xlsx, parquet) can tell it from a
    string and convert the text as that format needs (`int(n)` or `float(n)`; an integer
    may be longer than Python's limit for `int(str)`).
    """

    __slots__ = ()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _stdlib_loads(text: str) -> Any:
    return json.loads(
        text, parse_int=JsonNumber, parse_float=JsonNumber, parse_constant=_reject_constant
    )


# A \u escape of a surrogate: the stdlib decoder makes a lone one a str (orjson refuses it).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
# Escapes in order: a surrogate pair, a lone surrogate (the group), any other escape (so
# an escaped backslash is never read as the start of one).
_ESCAPES = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|(\\u[dD][89a-fA-F])|\\.",
    re.DOTALL,
)
_STRING_OR_BRACKET = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_deep = threading.Lock()


def loads(value: bytes) -> Any:
    """A message's JSON, numbers as `JsonNumber`; raises ValueError (orjson's message
    where orjson also refuses the text) for anything orjson refuses but a large number."""
    try:
        document = _decode(value.decode())
    except (ValueError, RecursionError) as exc:
        raise ValueError(_reason(value, str(exc))) from exc
    if _SURROGATE_ESCAPE.search(value) and _has_lone_surrogate(value):
        raise ValueError(_reason(value, "a lone surrogate in a string"))
    return document


def _decode(text: str) -> Any:
    try:
        return _stdlib_loads(text)
    except RecursionError:
        pass
    # The decoder recurses once a level, and Python's default limit (1,000, which nothing
    # here raises) stops it short of orjson's depth: give it the room, once the text is
    # known to be no deeper. Rare enough that the lock costs nothing.
    if _depth(text.encode()) > MAX_DEPTH:
        raise ValueError(f"nested more than {MAX_DEPTH:,} levels deep")
    with _deep:
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(limit + MAX_DEPTH)
        try:
            return _stdlib_loads(text)
        finally:
            sys.setrecursionlimit(limit)


def _has_lone_surrogate(value: bytes) -> bool:
    """In the text, not the document: a repeated key drops the value that held it."""
    return any(escape.group(1) for escape in _ESCAPES.finditer(value))


def _depth(value: bytes) -> int:
    depth = deepest = 0
    for token in _STRING_OR_BRACKET.findall(value):
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def _reason(value: bytes, ours: str) -> str:
    """Why the text is not JSON, in orjson's words where it has them (as before)."""
    try:
        orjson.loads(value)
    except orjson.JSONDecodeError as refused:
        if "depth limit" in str(refused):
            return f"nested more than {MAX_DEPTH:,} levels deep ({refused})"
        return str(refused)
    return ours


def _fragment(value: Any) -> orjson.Fragment:
    if isinstance(value, JsonNumber):
        return orjson.Fragment(value)
    raise TypeError


def compact_json(value: Any) -> str:
    """An object or array as compact JSON, as orjson writes it, numbers as their text."""
    try:
        return orjson.dumps(
            value, option=orjson.OPT_PASSTHROUGH_SUBCLASS, default=_fragment
        ).decode()
    except orjson.JSONEncodeError:
        # orjson writes 254 levels and reads 1024; nor does it write ints past 64 bits.
        return _compact_json_by_hand(value)


class _Raw(str):
    """Punctuation, written as it is."""

    __slots__ = ()


def _compact_json_by_hand(value: Any) -> str:
    """compact_json without a recursion limit: a stack of what is left to write."""
    out: list[str] = []
    todo: list[Any] = [value]
    while todo:
        item = todo.pop()
        if type(item) is _Raw or isinstance(item, JsonNumber):
            out.append(item)
        elif isinstance(item, dict | list):
            opening, closing = ("{", "}") if isinstance(item, dict) else ("[", "]")
            parts: list[Any] = [_Raw(opening)]
            members = item.items() if isinstance(item, dict) else enumerate(item)
            for n, (key, member) in enumerate(members):
                comma = "," if n else ""
                name = _scalar(key) + ":" if isinstance(item, dict) else ""
                parts += [_Raw(comma + name), member]
            parts.append(_Raw(closing))
            todo.extend(reversed(parts))
        else:
            out.append(_scalar(item))
    return "".join(out)


def _scalar(value: Any) -> str:
    if type(value) is int:
        return str(value)  # orjson stops at 64 bits
    return orjson.dumps(value).decode()
