"""A column's field in a record: the key of that exact name, else a walk by its dots.

The contract: `customer.name` is `record["customer.name"]` when the record has that key,
else `record["customer"]["name"]`; whatever is not found (a missing key, an intermediate
that is not an object, an array in the path) is missing, which every format writes as
null. Keys that hold dots are found only whole, at the top level. This is the reference
the C fast paths (`consumer/csvrows/`) are held to.
"""

from __future__ import annotations

from operator import itemgetter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

_ABSENT = object()


def lookup(record: dict[str, Any], field: str) -> Any:
    """The record's value for the field; None when missing."""
    value = record.get(field, _ABSENT)
    if value is not _ABSENT:
        return value
    if "." not in field:
        return None
    node: Any = record
    for part in field.split("."):
        if type(node) is not dict:
            return None
        node = node.get(part, _ABSENT)
        if node is _ABSENT:
            return None
    return node


def is_nested(fields: Sequence[str]) -> bool:
    """Whether any field may walk nested objects."""
    return any("." in f for f in fields)


def row_getter(fields: Sequence[str]) -> Callable[[dict[str, Any]], list[Any]]:
    """A function from a record to its values for the fields, in order (None if missing)."""
    fields = tuple(fields)
    if is_nested(fields):
        return lambda record: [lookup(record, f) for f in fields]
    if len(fields) == 1:
        (only,) = fields
        return lambda record: [record.get(only)]
    take = itemgetter(*fields)

    def row(record: dict[str, Any]) -> list[Any]:
        try:
            return list(take(record))
        except KeyError:  # a record that lacks a column: missing is null
            return [record.get(f) for f in fields]

    return row
