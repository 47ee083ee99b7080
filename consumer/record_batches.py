"""The records of fetched record batches, read in a lane: C for the batches producers
send by default (message format v2, uncompressed), aiokafka's reader for the rest
(compressed batches, the older message formats), with the same choice of records."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from consumer import _csvrows
from consumer.errors import SourceUnavailable

if TYPE_CHECKING:
    from collections.abc import Iterator

LOG_OVERHEAD = 12
"""A batch's base offset and length, ahead of the bytes the length counts (the header walk
in `consumer.source.fetch` uses it too)."""


def batch_messages(
    data: bytes | memoryview, start: int, end: int, key: bytes | None
) -> Iterator[tuple[int, bytes | None]]:
    """(offset, value) of each record in `data` (whole batches) with `start <= offset <
    end` and the key `key` (any key when None), in offset order. A batch that is corrupt
    (its CRC does not match) or cut short is `source_unavailable` at its base offset."""
    return _records(data, start, end, key, timestamps=False)


def stamped_messages(
    data: bytes | memoryview, start: int, end: int, key: bytes | None
) -> Iterator[tuple[int, int, bytes | None]]:
    """As `batch_messages`, with each record's timestamp: (offset, timestamp, value)."""
    return _records(data, start, end, key, timestamps=True)


def _records(
    data: bytes | memoryview, start: int, end: int, key: bytes | None, *, timestamps: bool
) -> Iterator[Any]:
    pos = 0
    while pos < len(data):
        try:
            records, pos = _csvrows.batch_records(data, pos, start, end, key, timestamps)
        except ValueError as exc:
            problem, offset = exc.args
            raise SourceUnavailable(f"source: {problem}", offset=offset) from exc
        yield from records
        if pos < len(data):
            size = LOG_OVERHEAD + int.from_bytes(data[pos + 8 : pos + 12], "big")
            batch = bytes(data[pos : pos + size])
            for offset, timestamp, value in _other_batch(batch, start, end, key):
                yield (offset, timestamp, value) if timestamps else (offset, value)
            pos += size


def _other_batch(
    batch: bytes, start: int, end: int, key: bytes | None
) -> Iterator[tuple[int, int, bytes | None]]:
    """One batch that C leaves to aiokafka: it decompresses, and reads the old formats."""
    from aiokafka.record.memory_records import MemoryRecords  # noqa: PLC0415 - rarely needed

    base = int.from_bytes(batch[:8], "big")
    try:
        read = MemoryRecords(batch).next_batch()
        if read is None:
            return
        valid = read.validate_crc()
        control = getattr(read, "is_control_batch", False)  # v2 only
        records = (
            [(r.offset, r.timestamp, r.key, r.value) for r in read] if valid and not control else []
        )
    except Exception as exc:  # however aiokafka fails on the bytes: they are corrupt
        raise _corrupt(base, f"aiokafka cannot read it ({exc})") from exc
    if not valid:
        raise _corrupt(base, "its CRC does not match its contents (corrupt)")
    for offset, timestamp, record_key, value in records:
        if start <= offset < end and (key is None or record_key == key):
            yield offset, timestamp, value


def _corrupt(base: int, problem: str) -> SourceUnavailable:
    return SourceUnavailable(f"source: record batch at offset {base}: {problem}", offset=base)
