"""A range's fetched batches handed to the lanes (in shared memory, or by the pipe when a
piece or its rows do not fit a slot, or there is no memfd) write what its messages do."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import orjson
import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer import lane_slots
from consumer.lanes import (
    LanePool,
    LaneWriter,
    RawMessage,
    _message,
    _Reply,
    pack_messages,
    packed_size,
    unpack_messages,
)
from consumer.runner_core import Tally
from consumer.source.fetch import FetchedBatches, whole_batches
from consumer.structs import ExportFormat, ExportOptions, SourceRange
from consumer.writers.files import FileSpec
from producer_tools.records import COLUMNS, generate

KEYS = [b"a", b"b"]


def batch(base: int, values: list[tuple[bytes, bytes]]) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 30,
    )
    for delta, (key, value) in enumerate(values):
        builder.append(delta, timestamp=1_000, key=key, value=value, headers=[])
    data = bytearray(builder.build())
    struct.pack_into(">q", data, 0, base)
    return bytes(data)


def source_log() -> tuple[list[FetchedBatches], list[RawMessage], list[bytes]]:
    """Fetches of batches (one message of them far over a slot), the messages, their keys."""
    messages, keys = [], []
    fetches = []
    offset = 100
    for fetch_no in range(6):
        encoded = b""
        for _ in range(7):
            sizes = [3, 40, 900] if fetch_no != 2 else [15_000]  # ~3 MB
            values = []
            for count in sizes:
                key = KEYS[offset % 2]
                value = orjson.dumps(generate(count, start_id=offset * 10))
                values.append((key, value))
                messages.append(RawMessage(offset + len(values) - 1, value))
                keys.append(key)
            encoded += batch(offset, values)
            offset += len(values)
        ends, _ = whole_batches(encoded)
        fetches.append(FetchedBatches(encoded, ends))
    return fetches, messages, keys


def open_descriptors() -> int:
    return sum(1 for _ in Path("/proc/self/fd").iterdir())


def export_batches(
    pool: LanePool, fmt: ExportFormat, fetches: list[FetchedBatches], source: SourceRange
) -> bytes:
    sink, tally = io.BytesIO(), Tally()
    writer = LaneWriter(pool, FileSpec.of(fmt, COLUMNS, ExportOptions()), (0, 1 << 24))
    try:
        writer.begin(sink, tally)
        for fetched in fetches:
            writer.write_batches(fetched, source, tally)
        writer.finish(tally)
    finally:
        writer.close()
    return sink.getvalue()


def export_messages(
    pool: LanePool,
    fmt: ExportFormat,
    messages: list[RawMessage],
    tally: Tally | None = None,
    max_bad: int = 0,
) -> bytes:
    sink, tally = io.BytesIO(), tally or Tally()
    writer = LaneWriter(pool, FileSpec.of(fmt, COLUMNS, ExportOptions()), (max_bad, 1 << 24))
    try:
        writer.begin(sink, tally)
        writer.write_messages(messages, tally)
        writer.finish(tally)
    finally:
        writer.close()
    return sink.getvalue()


@pytest.mark.parametrize("fmt", [ExportFormat.CSV, ExportFormat.JSONL])
@pytest.mark.parametrize("key", [None, "b"])
def test_batches_write_what_their_messages_do(pool, fmt, key) -> None:
    fetches, messages, keys = source_log()
    start, end = messages[5].offset, messages[-4].offset  # both inside a batch
    wanted = [
        m
        for m, k in zip(messages, keys, strict=True)
        if start <= m.offset < end and (key is None or k == key.encode())
    ]
    source = SourceRange("t", 0, start, end, key)
    expected = export_messages(pool, fmt, wanted)
    assert export_batches(pool, fmt, fetches, source) == expected
    assert export_batches(pool, fmt, fetches, source) == expected  # the lanes' memory reused
    # Over a slot: a piece (a message alone), and the rows of one.
    biggest = max(wanted, key=lambda m: len(m.value or b""))
    assert len(biggest.value or b"") > lane_slots.SLOT_BYTES
    assert len(export_messages(pool, fmt, [biggest])) > lane_slots.SLOT_BYTES


def test_without_a_memfd_everything_takes_the_pipe(monkeypatch) -> None:
    monkeypatch.setattr(lane_slots, "AVAILABLE", False)
    fetches, messages, _ = source_log()
    source = SourceRange("t", 0, 0, 1 << 40)
    piped = LanePool(size=3, cores=3, load=lambda: 1)
    try:
        out = export_batches(piped, ExportFormat.CSV, fetches, source)
        assert out == export_messages(piped, ExportFormat.CSV, messages)
    finally:
        piped.stop()


def test_abandoned_exports_leave_no_shared_memory_behind(pool) -> None:
    """A lane abandoned mid-export is killed; its memory (an open descriptor here) goes."""
    fetches, _, _ = source_log()
    source = SourceRange("t", 0, 0, 1 << 40)
    export_batches(pool, ExportFormat.CSV, fetches, source)  # every lane has its memory
    before = open_descriptors()
    for _ in range(4):
        writer = LaneWriter(pool, FileSpec.of(ExportFormat.CSV, COLUMNS), (0, 1 << 24))
        writer.begin(io.BytesIO(), Tally())
        writer.write_batches(fetches[0], source, Tally())
        writer.close()  # not finished: its lanes are killed, new ones start next time
    export_batches(pool, ExportFormat.CSV, fetches, source)
    assert open_descriptors() == before


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**62), st.one_of(st.none(), st.binary(max_size=50)))))
def test_packed_messages_unpack_as_they_were(piece: list[tuple[int, bytes | None]]) -> None:
    """A window's piece as it goes through a lane's memory: offsets, values, tombstones."""
    space = bytearray(packed_size(piece))
    pack_messages(piece, memoryview(space))
    assert list(unpack_messages(memoryview(space))) == piece


def test_window_pieces_through_shared_memory_write_what_one_writer_does(pool) -> None:
    """Merged messages (a window's) in pieces packed into the lanes' memory, one of them
    over a slot (it takes the pipe), and a tombstone (a bad record, skipped)."""
    _, messages, _ = source_log()
    window = [*messages[:40], RawMessage(9_999, None), *messages[40:]]
    tally = Tally()
    out = export_messages(pool, ExportFormat.CSV, window, tally, max_bad=1)
    assert out == export_messages(pool, ExportFormat.CSV, messages)
    assert tally.skipped == 1


class _FullMemory:
    """Memory whose slot cannot be written (as if the mapping were gone)."""

    def fits(self, size: int) -> bool:  # noqa: ARG002 - LaneMemory's signature
        return True

    def put_reply(self, data: bytes) -> tuple[int, int]:  # noqa: ARG002 - the same
        raise OSError("mapping gone")


def test_a_reply_that_cannot_be_packed_fails_its_command() -> None:
    """The reply thread answers with the command's failure (internal, naming the error)
    and the counts so far, instead of dying and leaving the service waiting."""
    reply = _Reply("ok", b"rows", False, _FullMemory(), (3, []))  # type: ignore[arg-type]
    assert _message(reply) == ("error", "internal", "OSError: mapping gone", None, 3, [])
