"""A record's value for a column, as the text a cell shows (the contract's cell rules)."""

from __future__ import annotations

import re
from typing import Any

import orjson

from consumer.json_text import compact_json

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
FORMULA_START_CHARS = frozenset(FORMULA_STARTS)
_LITERALS = {None: "", True: "true", False: "false"}
PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def cell_text(value: Any) -> str:
    """Strings as they are; numbers as their text in the message (`JsonNumber`, a str;
    an int or float made some other way as JSON writes it); booleans as JSON writes them;
    null as empty; objects and arrays as compact JSON, their numbers again as written."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool):
        return _LITERALS[value]
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return orjson.dumps(value).decode()
    return compact_json(value)


def escape_formula(text: str) -> str:
    """Prefix `'` to text a spreadsheet would evaluate, leaving plain numbers alone."""
    if text.startswith(FORMULA_STARTS) and not PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_cell(value: Any, escape_formulas: bool) -> str:
    """A value as a CSV cell shows it: the cell rules, and formula escaping for strings
    (never for a number's text, which is always a plain number)."""
    if isinstance(value, str):
        return escape_formula(value) if escape_formulas else value
    return cell_text(value)
