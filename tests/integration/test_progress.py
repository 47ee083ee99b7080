"""`running` progress events with records and percent, at most once a second, before the result."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime

from consumer.events import RESULT_SCHEMA, validator

BATCHES = 6
ROWS_A_BATCH = 100


def batch(number: int) -> list[dict[str, object]]:
    first = number * ROWS_A_BATCH
    return [{"id": first + i, "name": f"n{first + i}", "amount": i} for i in range(ROWS_A_BATCH)]


async def test_slow_export_reports_progress_then_completes(harness):
    """Records that trickle in over ~4 s give running events: rising, valid, a second apart."""
    async with harness.service():
        start, _ = await harness.write_batches([batch(0)], key="slow")
        end = start + BATCHES
        await harness.send_request(harness.request("slow", start, end, source={
            "topic": harness.records_topic, "partition": 0,
            "start_offset": start, "end_offset": end, "key": "slow",
        }))  # fmt: skip
        for number in range(1, BATCHES):
            await asyncio.sleep(0.7)  # the export waits for records not yet written
            await harness.write_batches([batch(number)], key="slow")
        result = await harness.result("slow")
    events = harness.events("slow")
    assert result["status"] == "completed"
    assert result["records"] == BATCHES * ROWS_A_BATCH
    running = [e for e in events if e["status"] == "running"]
    assert running, f"no progress events among {events}"
    assert events.index(result) > events.index(running[-1]), "progress came after the outcome"
    schema = validator(RESULT_SCHEMA)
    for event in running:
        schema.validate(event)
        assert event["format"] == "csv"
        assert 0 < event["records"] < result["records"]
        assert 0 < event["percent"] < 100
    assert [e["records"] for e in running] == sorted(e["records"] for e in running)
    assert [e["percent"] for e in running] == sorted(e["percent"] for e in running)
    stamps = [datetime.fromisoformat(e["updated_at"]) for e in running]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(stamps)]
    assert all(gap >= 0.99 for gap in gaps), f"progress more often than once a second: {gaps}"


async def test_short_export_sends_no_progress(harness):
    """An export that finishes within a second publishes only its outcome."""
    start, end = await harness.write_batches([batch(0)])
    async with harness.service():
        await harness.send_request(harness.request("quick", start, end))
        result = await harness.result("quick")
    assert [e["status"] for e in harness.events("quick")] == ["completed"]
    assert result["records"] == ROWS_A_BATCH


async def test_a_waiting_export_does_not_repeat_its_progress(harness):
    """While an export waits for records not yet written, the same progress is sent once,
    not every second (an outage would otherwise pile the repeats up in the producer)."""
    async with harness.service():
        start, _ = await harness.write_batches([batch(0)], key="waits")
        end = start + 3
        await harness.send_request(harness.request("waits", start, end, source={
            "topic": harness.records_topic, "partition": 0,
            "start_offset": start, "end_offset": end, "key": "waits",
        }))  # fmt: skip
        await asyncio.sleep(3.5)  # three intervals with nothing new to read
        await harness.write_batches([batch(1), batch(2)], key="waits")
        result = await harness.result("waits")
    running = [
        (e["records"], e["percent"]) for e in harness.events("waits") if e["status"] == "running"
    ]
    assert result["records"] == 3 * ROWS_A_BATCH
    # Once the records come, reading them is new progress and may be reported (whether
    # the two batches arrive in one fetch or two is the broker's timing); the wait itself
    # is reported once.
    assert running[0] == (ROWS_A_BATCH, 33.3)
    assert len(running) == len(set(running)), running
