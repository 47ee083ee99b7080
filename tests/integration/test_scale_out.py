"""Several instances in one group on a four-partition request topic, one output directory."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from consumer.topics import ensure_topics
from tests.integration.harness import Harness, output_of
from tests.integration.processes import ServiceProcess

if TYPE_CHECKING:
    from collections.abc import Sequence

PARTITIONS = 4


def rows(first: int, count: int) -> list[dict[str, Any]]:
    return [{"id": first + i, "name": f"name {first + i}", "amount": i} for i in range(count)]


class Traffic:
    """A mix of CSV sizes, PDFs and invalid requests, and what each should end as."""

    def __init__(self, harness: Harness, topic: str) -> None:
        self.harness = harness
        self.topic = topic
        self.expected: dict[str, tuple[str, int]] = {}
        """export_id -> (status, records)."""
        self.ranges: dict[str, tuple[int, int]] = {}

    async def seed(self) -> None:
        h = self.harness
        self.ranges["small"] = await h.write_batches([rows(0, 50)])
        self.ranges["medium"] = await h.write_batches([rows(i, 1000) for i in range(0, 5000, 1000)])
        self.ranges["pdf"] = await h.write_batches([rows(0, 200)])

    async def send(self, prefix: str, count: int) -> None:
        h = self.harness
        for i in range(count):
            kind = ("small", "medium", "pdf", "small", "invalid")[i % 5]
            export_id = f"{prefix}-{i:03d}-{kind}"
            if kind == "invalid":
                body = h.request(export_id, *self.ranges["small"], columns=[])
                self.expected[export_id] = ("failed", 0)
            else:
                fmt = "pdf" if kind == "pdf" else "csv"
                body = h.request(export_id, *self.ranges[kind], format=fmt)
                self.expected[export_id] = (
                    "completed",
                    {"small": 50, "medium": 5000}.get(kind, 200),
                )
            await h.send_request(body, topic=self.topic)

    async def check(self, instances: Sequence[ServiceProcess]) -> Counter[str]:
        """Every request has its outcome; each output is on disk once and whole.

        Returns how many exports each instance finished.
        """
        h = self.harness
        for export_id, (status, records) in self.expected.items():
            result = await h.result(export_id, wait_s=120)
            assert result["status"] == status, (export_id, result)
            if status == "completed":
                assert result["records"] == records, export_id
                path = output_of(result)
                assert path.stat().st_size == result["bytes"], export_id
                if path.suffix == ".csv":
                    assert len(path.read_text().splitlines()) == records + 1, export_id
        completed = {e for e, (status, _) in self.expected.items() if status == "completed"}
        on_disk = [p.stem for p in h.output_dir.iterdir() if not p.name.startswith(".")]
        assert sorted(on_disk) == sorted(completed)  # each once: no duplicates, nothing extra
        assert not list(h.output_dir.glob(".*.part"))
        # Each output was made once across all instances (a result may still be published
        # as a replay of it, when its maker lost the partition before publishing).
        made = Counter(
            e["export_id"] for service in instances for e in service.events("output_stored")
        )
        assert set(made) == completed
        assert max(made.values()) == 1, made.most_common(3)
        return Counter({s.name: len(s.events("export_finished")) for s in instances})


async def request_topic(harness: Harness) -> str:
    topic = f"{harness.settings.request_topic}-4p"
    await ensure_topics(harness.settings, {topic: PARTITIONS})
    return topic


@pytest.mark.parametrize("count", [2, 3])
async def test_instances_share_the_work_and_each_export_lands_once(harness, count):
    topic = await request_topic(harness)
    traffic = Traffic(harness, topic)
    await traffic.seed()
    instances = [
        ServiceProcess(harness, f"instance-{n}", request_topic=topic) for n in range(count)
    ]
    try:
        await asyncio.gather(*(service.start() for service in instances))
        await _settled(instances)
        await traffic.send("scale", 100)
        finished = await traffic.check(instances)
    finally:
        for service in instances:
            service.stop()
    assert sum(finished.values()) >= 100
    assert all(finished[s.name] > 0 for s in instances), finished  # the work was spread


async def test_an_instance_joining_and_leaving_mid_traffic_loses_nothing(harness):
    """Revoked exports finish or are cancelled untouched; the new owner redoes them once."""
    topic = await request_topic(harness)
    traffic = Traffic(harness, topic)
    await traffic.seed()
    first = ServiceProcess(harness, "stays", request_topic=topic, log_level="DEBUG")
    second = ServiceProcess(harness, "comes-and-goes", request_topic=topic, log_level="DEBUG")
    try:
        await first.start()
        await traffic.send("before", 30)
        await second.start(wait_ready=False)  # joins while the first is busy
        await traffic.send("during", 30)
        await second.wait_ready()
        await traffic.send("shared", 30)
        assert await second.signal_and_wait(signal.SIGTERM) == 0  # leaves mid-traffic
        await traffic.send("after", 10)
        await traffic.check([first, second])
    finally:
        first.stop()
        second.stop()
    assert len(first.events("partitions_assigned")) >= 3  # alone, shared, alone again
    for service in (first, second):
        _only_owned_partitions_committed(service)


def _only_owned_partitions_committed(service: ServiceProcess) -> None:
    """Read in order, the log never shows a commit for a partition the instance gave up."""
    owned: set[int] = set()
    commits = 0
    for line in service.logs():
        if line.get("event") == "partitions_assigned":
            owned |= set(line["partitions"])
        elif line.get("event") == "partitions_revoked":
            owned -= set(line["partitions"])
        elif line.get("event") == "offsets_committed":
            commits += 1
            committed = {int(p) for p in line["offsets"]}
            assert committed <= owned, (service.name, line, owned)
    assert commits > 0, service.name


async def _settled(instances: Sequence[ServiceProcess]) -> None:
    """Wait until the group's last rebalance has given every instance its partitions."""
    async with asyncio.timeout(60):
        while True:
            latest = [s.events("partitions_assigned")[-1:] for s in instances]
            owned = [p for events in latest for e in events for p in e["partitions"]]
            if sorted(owned) == list(range(PARTITIONS)) and all(latest):
                return
            await asyncio.sleep(0.1)
