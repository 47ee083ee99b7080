"""Records read out of fetched record batches (C, `kafka_batches.c`, with aiokafka's reader
for what C leaves to it), held to aiokafka's own reading of the same bytes."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import pytest
from aiokafka.record._crc32c import crc as reference_crc32c
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.legacy_records import LegacyRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer import _csvrows
from consumer.errors import SourceUnavailable
from consumer.record_batches import batch_messages, stamped_messages
from consumer.source.fetch import whole_batches

GZIP, SNAPPY, LZ4, ZSTD = 1, 2, 3, 4
CONTROL = 0x20
LOG_APPEND_TIME = 0x08


@dataclass
class Batch:
    base: int
    records: list[tuple[bytes | None, bytes | None]]
    compression: int = 0
    control: bool = False
    legacy: bool = False
    log_append_time: bool = False

    @property
    def next_offset(self) -> int:
        return self.base + max(len(self.records), 1)


def encode(batch: Batch) -> bytes:
    """A batch's bytes as a broker sends them."""
    if batch.legacy:
        legacy = LegacyRecordBatchBuilder(magic=1, compression_type=0, batch_size=10**8)
        for delta, (key, value) in enumerate(batch.records):
            legacy.append(delta, timestamp=1_000, key=key, value=value)
        data = bytearray(legacy.build())
        # One entry per record: each entry's offset is absolute.
        pos = 0
        for delta in range(len(batch.records)):
            struct.pack_into(">q", data, pos, batch.base + delta)
            pos += 12 + struct.unpack_from(">i", data, pos + 8)[0]
        return bytes(data)
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=batch.compression,
        is_transactional=batch.control,
        producer_id=7 if batch.control else -1,
        producer_epoch=0 if batch.control else -1,
        base_sequence=-1,
        batch_size=10**8,
    )
    for delta, (key, value) in enumerate(batch.records):
        builder.append(delta, timestamp=1_000 + delta, key=key, value=value, headers=[("h", b"v")])
    data = bytearray(builder.build())
    struct.pack_into(">q", data, 0, batch.base)
    attributes = struct.unpack_from(">h", data, 21)[0]
    if batch.control:
        attributes |= CONTROL
    if batch.log_append_time:  # the broker's time, once for the batch
        attributes |= LOG_APPEND_TIME
        struct.pack_into(">q", data, 35, 1_700_000_000_000 + batch.base)
    struct.pack_into(">h", data, 21, attributes)
    struct.pack_into(">I", data, 17, reference_crc32c(bytes(data[21:])))
    return bytes(data)


def reference(
    data: bytes, start: int, end: int, key: bytes | None, *, timestamps: bool = False
) -> list[tuple[int, bytes | None] | tuple[int, int, bytes | None]]:
    """What aiokafka's consumer hands on of the same bytes, with the same choice. (Batch by
    batch: aiokafka's reader takes every batch of a buffer to be in its first one's format.)"""
    found: list[tuple[int, bytes | None] | tuple[int, int, bytes | None]] = []
    pos = 0
    while pos < len(data):
        size = 12 + struct.unpack_from(">i", data, pos + 8)[0]
        batch = MemoryRecords(data[pos : pos + size]).next_batch()
        pos += size
        assert batch is not None
        assert batch.validate_crc()
        if getattr(batch, "is_control_batch", False):
            continue
        found.extend(
            (record.offset, record.timestamp, record.value)
            if timestamps
            else (record.offset, record.value)
            for record in batch
            if start <= record.offset < end and (key is None or record.key == key)
        )
    return found


KEYS = st.sampled_from([None, b"", b"k", b"other"])
VALUES = st.one_of(st.none(), st.binary(max_size=300))
RECORDS = st.lists(st.tuples(KEYS, VALUES), min_size=1, max_size=12)


@st.composite
def batches(draw: st.DrawFn) -> list[Batch]:
    made = []
    base = draw(st.integers(0, 2**40))
    for _ in range(draw(st.integers(1, 6))):
        kinds = ["plain", "plain", "compressed", "control", "legacy", "log_append_time"]
        kind = draw(st.sampled_from(kinds))
        records = draw(RECORDS)
        if kind == "control":
            records = [(b"\x00\x00\x00\x00", b"\x00\x00\x00\x00\x00\x00")]
        batch = Batch(
            base,
            records,
            compression=draw(st.sampled_from([GZIP, SNAPPY, LZ4, ZSTD]))
            if kind == "compressed"
            else 0,
            control=kind == "control",
            legacy=kind == "legacy",
            log_append_time=kind == "log_append_time",
        )
        made.append(batch)
        base = batch.next_offset + draw(st.integers(0, 3))  # compaction leaves gaps
    return made


@settings(max_examples=300, deadline=None)
@given(batches(), st.data())
def test_the_records_are_those_aiokafka_reads(made: list[Batch], data: st.DataObject) -> None:
    raw = b"".join(encode(b) for b in made)
    first, last = made[0].base, made[-1].next_offset
    start = data.draw(st.integers(first - 2, last + 1))
    end = data.draw(st.integers(start, last + 2))
    key = data.draw(KEYS)
    assert list(batch_messages(raw, start, end, key)) == reference(raw, start, end, key)
    stamped = reference(raw, start, end, key, timestamps=True)
    assert list(stamped_messages(raw, start, end, key)) == stamped


@settings(max_examples=200, deadline=None)
@given(batches(), st.data())
def test_a_fetch_cut_anywhere_has_its_whole_batches_found(
    made: list[Batch], data: st.DataObject
) -> None:
    encoded = [encode(b) for b in made]
    raw = b"".join(encoded)
    cut = data.draw(st.integers(0, len(raw)))
    ends, next_offset = whole_batches(raw[:cut])
    whole = []
    pos = 0
    for batch, chunk in zip(made, encoded, strict=True):
        for piece in _entries(batch, chunk):
            if pos + len(piece) > cut:
                break
            pos += len(piece)
            whole.append((pos, piece))
        else:
            continue
        break
    assert ends == tuple(end for end, _ in whole)
    if whole:
        assert next_offset is not None
        assert list(batch_messages(raw[: ends[-1]], 0, 2**62, None)) == reference(
            raw[: ends[-1]], 0, 2**62, None
        )
    else:
        assert next_offset is None


def _entries(batch: Batch, chunk: bytes) -> list[bytes]:
    """A batch's entries as the header walk sees them: an old format's messages one by one."""
    if not batch.legacy:
        return [chunk]
    entries, pos = [], 0
    while pos < len(chunk):
        size = 12 + struct.unpack_from(">i", chunk, pos + 8)[0]
        entries.append(chunk[pos : pos + size])
        pos += size
    return entries


def test_the_offset_after_a_v2_batch_is_its_last_offset_plus_one_even_when_compacted() -> None:
    batch = bytearray(encode(Batch(100, [(None, b"a"), (None, b"b")])))
    struct.pack_into(">i", batch, 23, 9)  # the last record, offset 109, was compacted away
    struct.pack_into(">I", batch, 17, reference_crc32c(bytes(batch[21:])))
    assert whole_batches(bytes(batch)) == ((len(batch),), 110)


@pytest.mark.parametrize("compression", [0, GZIP, SNAPPY, LZ4, ZSTD])
def test_a_corrupt_batch_is_source_unavailable_at_its_offset(compression: int) -> None:
    good = encode(Batch(40, [(None, b'{"id": 1}')]))
    records: list[tuple[bytes | None, bytes | None]] = [(None, b'{"id": 2}'), (None, b"{}")]
    corrupt = bytearray(encode(Batch(41, records, compression)))
    corrupt[-3] ^= 0x01
    with pytest.raises(SourceUnavailable) as caught:
        list(batch_messages(good + bytes(corrupt), 0, 100, None))
    assert caught.value.offset == 41
    assert "record batch at offset 41" in caught.value.message
    assert "CRC does not match" in caught.value.message


def test_a_batch_cut_short_is_source_unavailable_at_its_offset() -> None:
    data = encode(Batch(7, [(None, b"x")])) + encode(Batch(8, [(None, b"y")]))[:-1]
    with pytest.raises(SourceUnavailable) as caught:
        list(batch_messages(data, 0, 100, None))
    assert caught.value.offset == 8
    assert "cut short" in caught.value.message


def test_a_record_longer_than_its_batch_is_refused_not_read_past() -> None:
    batch = bytearray(encode(Batch(3, [(None, b"abc")])))
    batch[61] = 0x7E  # the first record's length: 63 bytes, more than the batch holds
    struct.pack_into(">I", batch, 17, reference_crc32c(bytes(batch[21:])))
    with pytest.raises(SourceUnavailable, match="runs past the batch's end") as caught:
        list(batch_messages(bytes(batch), 0, 100, None))
    assert caught.value.offset == 3


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_crc32c_is_kafkas_both_ways(data: bytes) -> None:
    assert _csvrows.crc32c(data, True) == _csvrows.crc32c(data, False) == reference_crc32c(data)


@settings(max_examples=300, deadline=None)
@given(batches(), st.data())
def test_mutated_batches_are_read_or_refused_never_misread(
    made: list[Batch], data: st.DataObject
) -> None:
    """A flipped or dropped byte anywhere: the reader refuses (source_unavailable) or gives
    what aiokafka gives (a change the CRC does not cover: the base offset, the length),
    and never reads outside the bytes (the sanitizer run holds it to that)."""
    raw = bytearray(b"".join(encode(b) for b in made))
    at = data.draw(st.integers(0, len(raw) - 1))
    if data.draw(st.booleans()):
        raw[at] ^= 1 << data.draw(st.integers(0, 7))
    else:
        del raw[at]
    try:
        got = list(batch_messages(bytes(raw), 0, 2**62, None))
    except SourceUnavailable:
        return
    try:
        expected = reference(bytes(raw), 0, 2**62, None)
    except Exception:  # noqa: BLE001 - aiokafka fails its own way on such bytes
        return
    assert got == expected
