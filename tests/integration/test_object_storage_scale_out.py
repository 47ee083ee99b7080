"""Three instances that share nothing but the bucket and the group: each its own empty
directory, six request partitions, mixed traffic with replays and poison, one instance
killed and another added mid-way."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from consumer.topics import ensure_topics
from tests.integration.conftest import S3_PREFIX
from tests.integration.processes import ServiceProcess

if TYPE_CHECKING:
    from tests.integration.harness import Harness

PARTITIONS = 6
REQUESTS = 200
RECORDS = {"small": 50, "medium": 5000, "pdf": 200}
KINDS = ("small", "medium", "pdf", "small", "invalid", "replay", "poison")


def rows(first: int, count: int) -> list[dict[str, Any]]:
    return [{"id": first + i, "name": f"name {first + i}", "amount": i} for i in range(count)]


class Traffic:
    """CSV and PDF exports, invalid requests, replays of earlier ones and poison messages,
    and what each should end as."""

    def __init__(self, harness: Harness, topic: str) -> None:
        self.harness = harness
        self.topic = topic
        self.ranges: dict[str, tuple[int, int]] = {}
        self.expected: dict[str, tuple[str, int]] = {}
        """export_id -> (status, records)."""
        self.deliveries: dict[str, int] = {}
        """export_id -> how many times it was requested."""
        self.bodies: dict[str, dict[str, Any]] = {}
        self.poison: list[bytes] = []

    async def seed(self) -> None:
        h = self.harness
        self.ranges["small"] = await h.write_batches([rows(0, 50)])
        self.ranges["medium"] = await h.write_batches([rows(i, 1000) for i in range(0, 5000, 1000)])
        self.ranges["pdf"] = await h.write_batches([rows(0, 200)])

    async def send(self, first: int, last: int) -> None:
        for i in range(first, last):
            kind = KINDS[i % len(KINDS)]
            if kind == "poison":
                self.poison.append(f"not json {i}".encode())
                await self.harness.send_request(self.poison[-1], key=b"poison", topic=self.topic)
            elif kind == "replay":
                export_id = sorted(self.bodies)[i % len(self.bodies)]
                self.deliveries[export_id] += 1
                await self.harness.send_request(self.bodies[export_id], topic=self.topic)
            else:
                await self._send_new(f"req-{i:03d}-{kind}", kind)

    async def _send_new(self, export_id: str, kind: str) -> None:
        h = self.harness
        if kind == "invalid":
            body = h.request(export_id, *self.ranges["small"], columns=[])
            self.expected[export_id] = ("failed", 0)
        else:
            body = h.request(
                export_id, *self.ranges[kind], format="pdf" if kind == "pdf" else "csv"
            )
            self.expected[export_id] = ("completed", RECORDS[kind])
            self.bodies[export_id] = body
        self.deliveries[export_id] = 1
        await h.send_request(body, topic=self.topic)

    async def check_results(self) -> None:
        """Each delivery has its outcome; a completed export's results all name one output."""
        for export_id, (status, records) in self.expected.items():
            outcomes = [
                await self.harness.result(export_id, nth=n, wait_s=180)
                for n in range(1, 1 + self.deliveries[export_id])
            ]
            errors = [r.get("error") for r in outcomes]
            assert {r["status"] for r in outcomes} == {status}, (export_id, errors)
            if status == "completed":
                assert len({r["output"]["sha256"] for r in outcomes}) == 1, export_id
                assert {r["records"] for r in outcomes} == {records}, export_id

    def completed_keys(self) -> list[str]:
        return sorted(
            f"{S3_PREFIX}/{e}.{'pdf' if e.endswith('pdf') else 'csv'}"
            for e, (status, _) in self.expected.items()
            if status == "completed"
        )


async def test_three_instances_one_bucket(harness, seaweed, bucket, s3, tmp_path):
    """Every request gets its outcome (poison its dead letter), every output is in the bucket
    exactly once and whole, no unfinished upload remains, and no instance wrote locally."""
    topic = f"{harness.settings.request_topic}-6p"
    await ensure_topics(harness.settings, {topic: PARTITIONS})
    traffic = Traffic(harness, topic)
    await traffic.seed()
    dirs = [tmp_path / f"host-{n}" for n in range(3)]
    instances = [
        ServiceProcess(harness, f"host-{n}", request_topic=topic, output_dir=dirs[n], **s3)
        for n in range(3)
    ]
    doomed, stays, joins = instances
    try:
        await asyncio.gather(doomed.start(), stays.start())
        await traffic.send(0, REQUESTS // 2)
        await doomed.wait_for_log("export_started", count=3)
        doomed.kill()  # mid-traffic: its partitions go to the others, its work is redone
        await joins.start(wait_ready=False)
        await traffic.send(REQUESTS // 2, REQUESTS)
        await joins.wait_ready()
        await traffic.check_results()
        letters = await harness.dead_letters(len(traffic.poison), covering=traffic.poison)
    finally:
        for service in instances:
            service.stop()
    assert {m.value for m in letters} >= set(traffic.poison)
    keys = seaweed.outputs(bucket)
    assert keys == traffic.completed_keys()  # each once, nothing extra
    for key in keys:
        if key.endswith(".csv"):
            kind = key.removesuffix(".csv").rsplit("-", 1)[1]
            assert len(seaweed.read(bucket, key).splitlines()) == RECORDS[kind] + 1, key
    assert seaweed.uploads(bucket) == []
    assert all(not d.exists() or not any(d.iterdir()) for d in dirs)  # nothing local
    made = [e["export_id"] for s in instances for e in s.events("output_stored")]
    assert sorted(f"{S3_PREFIX}/{e}" for e in made) == [k.rsplit(".", 1)[0] for k in keys]
    assert stays.events("export_finished")
    assert joins.events("export_finished")  # the newcomer took its share
