"""A record's value for a column, as the text a cell shows (the contract's cell rules)."""

from __future__ import annotations

from typing import Any

import orjson


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
