"""A record's value for a column, as the text a cell shows (the contract's cell rules)."""

from __future__ import annotations

import re
from typing import Any

import orjson

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
FORMULA_START_CHARS = frozenset(FORMULA_STARTS)
PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def cell_text(value: Any) -> str:
    """Strings as they are; numbers and booleans as JSON writes them; null as empty;
    objects and arrays as compact JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    return orjson.dumps(value).decode()


def escape_formula(text: str) -> str:
    """Prefix `'` to text a spreadsheet would evaluate, leaving plain numbers alone."""
    if text.startswith(FORMULA_STARTS) and not PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_cell(value: Any, escape_formulas: bool) -> str:
    """A value as a CSV cell shows it: the cell rules, and formula escaping for strings."""
    if isinstance(value, str):
        return escape_formula(value) if escape_formulas else value
    return cell_text(value)
