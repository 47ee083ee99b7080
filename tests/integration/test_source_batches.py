"""The record batches producers really send, read by the lanes out of the fetched bytes:
compressed batches, many records to a batch with a range that starts and ends inside one,
other keys between, and transactions (their markers are no rows)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.integration.harness import output_of


def row(n: int) -> dict[str, Any]:
    return {"id": n, "name": f"name {n}", "amount": n * 10}


async def send_in_batches(
    bootstrap: str, topic: str, values: Sequence[tuple[bytes | None, bytes]], **producer: Any
) -> list[int]:
    """Each value sent without waiting, so the producer packs them into few batches."""
    async with AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50, **producer) as p:
        futures = [await p.send(topic, v, key=k, partition=0) for k, v in values]
        return [(await f).offset for f in futures]


@pytest.mark.parametrize("compression", [None, "gzip", "snappy", "lz4", "zstd"])
async def test_a_range_inside_batches_of_many_records_and_keys(harness, compression) -> None:
    values = [(b"a" if n % 3 else b"b", orjson.dumps(row(n))) for n in range(400)]
    offsets = await send_in_batches(
        harness.base["bootstrap_servers"],
        harness.records_topic,
        values,
        compression_type=compression,
    )
    start, end = offsets[17], offsets[389]  # both inside a batch
    everything = harness.request("all", start, end)
    keyed = harness.request("keyed", start, end)
    keyed["source"]["key"] = "b"
    async with harness.service():
        await harness.send_request(everything)
        await harness.send_request(keyed)
        all_done = await harness.result("all")
        keyed_done = await harness.result("keyed")
    assert all_done["status"] == "completed", all_done
    assert keyed_done["status"] == "completed", keyed_done
    lines = output_of(all_done).read_text().splitlines()
    assert lines[0] == "id,name,amount"
    assert lines[1:] == [f"{n},name {n},{n * 10}" for n in range(17, 389)]
    assert all_done["records"] == 389 - 17
    keyed_lines = output_of(keyed_done).read_text().splitlines()[1:]
    assert keyed_lines == [f"{n},name {n},{n * 10}" for n in range(17, 389) if n % 3 == 0]


@pytest.mark.needs_transactions
async def test_transaction_markers_are_no_rows_and_the_export_reads_past_them(harness) -> None:
    """Committed and aborted transactions, each ended by a marker that takes an offset: the
    rows are the records (an aborted one too: the source is read as Kafka's consumers read
    by default, read_uncommitted), the export completes past the last marker."""
    bootstrap = harness.base["bootstrap_servers"]
    topic = harness.records_topic
    async with AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=topic) as producer:
        async with producer.transaction():
            first = await producer.send_and_wait(topic, orjson.dumps(row(1)), partition=0)
            await producer.send_and_wait(topic, orjson.dumps(row(2)), partition=0)
        await producer.begin_transaction()
        await producer.send_and_wait(topic, orjson.dumps(row(3)), partition=0)
        await producer.abort_transaction()
        async with producer.transaction():
            last = await producer.send_and_wait(topic, orjson.dumps(row(4)), partition=0)
    end = last.offset + 2  # past the last commit marker
    async with harness.service():
        await harness.send_request(harness.request("txn", first.offset, end))
        done = await asyncio.wait_for(harness.result("txn"), 60)
    assert done["status"] == "completed", done
    assert output_of(done).read_text().splitlines()[1:] == [
        f"{n},name {n},{n * 10}" for n in (1, 2, 3, 4)
    ]
    assert done["records"] == 4
