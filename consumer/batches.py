"""Source messages as records: the one decoding step, light enough for worker processes.

Numbers are decoded as their text (`consumer.json_text.JsonNumber`), as the contract writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from consumer import json_text


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    """The records of one source message, and what could not be used."""

    records: list[dict[str, Any]]
    bad: int = 0
    """Records (or the whole message, counted as one) that are not objects."""
    problem: str | None = None
    """What was wrong with the first bad record."""


def plain_batch(value: bytes) -> list[dict[str, Any]] | None:
    """A message's records decoded by orjson (numbers as int or float: for formats that
    store numbers as numbers), or None when it is not JSON or holds anything but objects,
    so the exact path (`decode_batch`) decides and names what is wrong."""
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    records = [document] if isinstance(document, dict) else document
    if not isinstance(records, list) or not all(type(r) is dict for r in records):
        return None
    return records


def decode_batch(value: bytes | None, max_bytes: int | None = None) -> DecodedBatch:
    """A source message as records: a JSON object, or an array of objects."""
    if value is None or (max_bytes is not None and len(value) > max_bytes):
        problem = (
            "message has no value (tombstone)"
            if value is None
            else f"message is {len(value):,} bytes, over the limit of {max_bytes:,} "
            "(EXPORT_MAX_BATCH_BYTES)"
        )
        return DecodedBatch([], bad=1, problem=problem)
    try:
        payload = json_text.loads(value)
    except ValueError as exc:
        return DecodedBatch([], bad=1, problem=f"message is not JSON: {exc}")
    if isinstance(payload, dict):
        return DecodedBatch([payload])
    if not isinstance(payload, list):
        kind = "number" if isinstance(payload, json_text.JsonNumber) else type(payload).__name__
        return DecodedBatch([], bad=1, problem=f"message is a JSON {kind}, not an object or array")
    records = [item for item in payload if isinstance(item, dict)]
    bad = len(payload) - len(records)
    if bad == 0:
        return DecodedBatch(records)
    index = next(i for i, item in enumerate(payload) if not isinstance(item, dict))
    return DecodedBatch(records, bad=bad, problem=f"item {index} of the batch is not an object")
