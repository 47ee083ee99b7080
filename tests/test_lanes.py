"""A CSV export spread over several worker processes writes what one writer would."""

from __future__ import annotations

import io

import orjson
import pytest

from consumer.errors import BadRecord
from consumer.lanes import LanePool, LaneWriter, RawMessage
from consumer.runner_core import Tally
from consumer.structs import ExportFormat, ExportOptions
from consumer.writers.csv import CsvWriter
from consumer.writers.files import FileSpec
from producer_tools.records import COLUMNS, generate

OPTIONS = ExportOptions(bom=True)


def fetches(count: int, per_fetch: int = 2) -> list[list[RawMessage]]:
    """`count` fetches of `per_fetch` messages, 25 records each, offsets from 100."""
    messages = [
        RawMessage(100 + n, orjson.dumps(generate(25, start_id=25 * n + 1)))
        for n in range(count * per_fetch)
    ]
    return [messages[i : i + per_fetch] for i in range(0, len(messages), per_fetch)]


def export(
    pool: LanePool,
    fetched: list[list[RawMessage]],
    max_bad: int = 0,
    tally: Tally | None = None,
) -> bytes:
    sink, tally = io.BytesIO(), tally or Tally()
    writer = LaneWriter(pool, FileSpec.of(ExportFormat.CSV, COLUMNS, OPTIONS), (max_bad, 1 << 20))
    try:
        writer.begin(sink, tally)
        for messages in fetched:
            writer.write_messages(messages, tally)
        writer.finish(tally)
    finally:
        writer.close()
    return sink.getvalue()


def one_writer(fetched: list[list[RawMessage]]) -> bytes:
    sink = io.BytesIO()
    writer = CsvWriter(COLUMNS, OPTIONS)
    writer.begin(sink)
    for messages in fetched:
        for message in messages:
            writer.write_records(orjson.loads(message.value or b"[]"))
    return sink.getvalue()


def test_three_lanes_write_the_rows_in_topic_order(pool):
    """BOM and header once, then every row in offset order, as one writer writes them."""
    fetched = fetches(20)
    out = export(pool, fetched)
    assert out == one_writer(fetched)
    assert out.count(b"\xef\xbb\xbf") == 1
    assert out.count(b"id,customer,") == 1
    assert len(pool.worker_pids()) == 3


def test_a_quiet_source_brings_the_tally_up_to_date(pool):
    """An empty fetch (the source is quiet) takes every reply: all records are counted."""
    sink, tally = io.BytesIO(), Tally()
    writer = LaneWriter(pool, FileSpec.of(ExportFormat.CSV, COLUMNS, OPTIONS), (0, 1 << 20))
    try:
        writer.begin(sink, tally)
        for messages in fetches(2):
            writer.write_messages(messages, tally)
        writer.write_messages([], tally)
        assert tally.records == 100
        writer.finish(tally)
    finally:
        writer.close()


def test_bad_records_are_counted_in_offset_order_across_lanes(pool):
    """With max_bad_records 1 the second bad message fails the export, at its offset."""
    fetched = fetches(6)
    fetched[1][0] = RawMessage(102, b"not json")
    fetched[4][1] = RawMessage(109, b"[1]")
    fetched[5][0] = RawMessage(110, b"{")
    with pytest.raises(BadRecord) as caught:
        export(pool, fetched, max_bad=1)
    assert caught.value.offset == 109
    assert "bad record at offset 109: item 0 of the batch is not an object" in caught.value.message
    assert "(2 bad, max_bad_records is 1)" in caught.value.message


def test_no_extra_lanes_while_other_exports_need_the_cores():
    """Three exports taken on, three cores: each export gets one worker."""
    busy = LanePool(size=5, cores=3, load=lambda: 3)
    try:
        fetched = fetches(4)
        assert export(busy, fetched) == one_writer(fetched)
        assert len(busy.worker_pids()) == 1
    finally:
        busy.stop()


def test_messages_c_declines_are_decoded_in_their_place(pool):
    """A piece mixing messages C writes straight from their text with ones it leaves to
    decoding (an exponent, a nested value, \\u0000 and a lone item, a bad message) keeps
    every row in offset order and counts every record and bad one."""
    declined = [
        {"id": 1e-7, "customer": "exponent"},
        {"id": 2, "customer": {"nested": [1, 2]}},
        {"id": 3, "customer": "Jos\u00e9", "note": "tab\there"},
    ]
    fetched = fetches(3)
    fetched[0][1] = RawMessage(101, orjson.dumps(declined))
    fetched[1][0] = RawMessage(102, b'[{"id": 4, "customer": "\\ud800"}]')  # orjson fails
    fetched[2][1] = RawMessage(105, orjson.dumps([{"id": 5}, 6, {"id": 7}]))
    tally = Tally()
    out = export(pool, fetched, max_bad=2, tally=tally)
    good = [[m for m in messages if m.offset != 102] for messages in fetched]
    expected = one_writer([[RawMessage(m.offset, orjson.dumps(
        [r for r in orjson.loads(m.value or b"[]") if isinstance(r, dict)]
    )) for m in messages] for messages in good])  # fmt: skip
    assert out == expected
    assert b"1e-7,exponent," in expected
    assert b'2,"{""nested"":[1,2]}",' in expected
    assert (tally.records, tally.skipped) == (3 * 25 + 3 + 2, 2)
