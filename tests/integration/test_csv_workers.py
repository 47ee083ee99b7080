"""CSV formatting runs in worker processes: a worker that dies fails only its export."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from tests.integration.harness import output_of


def rows(first: int, count: int) -> list[dict[str, Any]]:
    return [{"id": first + i, "name": f"name {first + i}", "amount": i} for i in range(count)]


async def test_a_killed_csv_worker_fails_its_export_internal_and_the_pool_recovers(harness):
    start, _ = await harness.write_batches([rows(0, 5)], key="doomed")
    source = {"topic": harness.records_topic, "partition": 0, "start_offset": start,
              "end_offset": start + 2, "key": "doomed"}  # fmt: skip
    async with harness.service() as service:
        await harness.send_request(harness.request("doomed", start, start + 2, source=source))
        async with asyncio.timeout(30):
            while not service.lane_pool.worker_pids():  # noqa: ASYNC110 - a process, no event
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # the first batch is formatted; the export waits for more
        for pid in service.lane_pool.worker_pids():  # the export's lanes, one per core
            os.kill(pid, 9)
        await harness.write_batches([rows(5, 1)], key="doomed")
        failed = await harness.result("doomed")
        after = harness.request("after", *await harness.write_batches([rows(0, 3)]))
        await harness.send_request(after)
        done = await harness.result("after")
    assert failed["status"] == "failed"
    assert failed["error"]["reason"] == "internal"
    assert "lane-worker process died" in failed["error"]["message"]
    assert done["status"] == "completed"
    assert output_of(done).read_text().splitlines()[1:] == [
        "0,name 0,0",
        "1,name 1,1",
        "2,name 2,2",
    ]
    assert sorted(p.name for p in harness.output_dir.iterdir() if not p.name.startswith(".")) == [
        "after.csv"
    ]


REPEATED = b'[{"id": 6, "c": {"name": "Cy", "name": "Di"}}, {"id": 7, "c": {"name": "Ed"}, "c.name": null}]'  # noqa: E501
"""A repeated key (its last value counts) and an exact key that is null."""


async def test_dotted_columns_are_found_in_the_workers(harness):
    """A request naming dotted fields gets, through the CSV workers, what `lookup` finds:
    the walk, the exact key over it (null too), the last of a repeated key, nothing
    through an array or null; a message whose found value is an object is decoded
    instead, in its place."""
    batches = [
        [{"id": 1, "c": {"name": "Ada", "city": {"zip": "75001"}}}, {"id": 2, "c.name": "exact"}],
        [{"id": 3, "c": [{"name": "no"}]}, {"id": 4, "c": None}],
        [{"id": 5, "c": {"name": {"first": "Bo"}}}],
        REPEATED,
    ]
    start, end = await harness.write_batches(batches)
    columns = ["id", {"field": "c.name", "label": "name"}, "c.city.zip"]
    async with harness.service():
        await harness.send_request(harness.request("dotted", start, end, columns=columns))
        done = await harness.result("dotted")
    assert done["status"] == "completed", done
    assert output_of(done).read_text().splitlines() == [
        "id,name,c.city.zip",
        "1,Ada,75001",
        "2,exact,",
        "3,,",
        "4,,",
        '5,"{""first"":""Bo""}",',
        "6,Di,",
        "7,,",
    ]
