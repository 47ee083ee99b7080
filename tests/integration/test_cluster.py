"""A three-broker Apache Kafka cluster that loses brokers while the service works.

One cluster for the module (three KRaft nodes, broker and controller each, on loopback):
every topic the tests make has three replicas, `min.insync.replicas=2`, and so have the
offsets and transaction-state topics. The service runs as its own process, so that it
never exiting is something the tests see. Each test has its own topics and group.

The delays are measured and printed (`-s` shows them), never asserted.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from datetime import datetime
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from tests.apache_kafka import ApacheKafka, KafkaNode, resolve_jars
from tests.integration.harness import Harness, scrape
from tests.integration.processes import ServiceProcess

pytestmark = [pytest.mark.needs_apache_kafka, pytest.mark.timeout(300)]

CLUSTER_CONFIG = {
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "offsets.topic.replication.factor": "3",
    "transaction.state.log.replication.factor": "3",
    "transaction.state.log.min.isr": "2",
    # A dead broker is fenced, and its partitions get new leaders, after 3 s, not 9.
    "broker.session.timeout.ms": "3000",
    "broker.heartbeat.interval.ms": "500",
}
HEAP = ("-Xms128m", "-Xmx384m")
"""Three JVMs beside the suite on two cores: smaller than the single node's."""
SETTLE_S = 90.0
WINDOW_S = 8.0
"""How long (c) watches that nothing is acknowledged or committed with two brokers down."""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Three Apache Kafka nodes for the module, killed at its end (their data is temporary)."""
    kafka = ApacheKafka(
        tmp_path_factory.mktemp("cluster"), nodes=3, extra_config=CLUSTER_CONFIG, heap=HEAP
    )
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.kill()


def rows(first: int, count: int) -> list[dict[str, Any]]:
    return [{"id": first + i, "name": f"name {first + i}", "amount": i} for i in range(count)]


def node_by_id(cluster: ApacheKafka, node_id: int) -> KafkaNode:
    return next(n for n in cluster.nodes if n.node_id == node_id)


async def restart(node: KafkaNode) -> None:
    """Start a node again and wait until it serves.

    Started from the event loop's thread, never a worker thread: the node dies with the
    thread that started it (its parent-death signal), and `to_thread`'s threads end with
    the test's loop.
    """
    node.start(resolve_jars())
    await asyncio.to_thread(node.wait_ready, time.monotonic() + SETTLE_S)


async def describe(bootstrap: str, topics: list[str]) -> list[dict[str, Any]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described: list[dict[str, Any]] = await admin.describe_topics(topics)
        return described
    finally:
        await admin.close()


async def leaders(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], int]:
    return {
        (t["topic"], p["partition"]): p["leader"]
        for t in await describe(bootstrap, topics)
        for p in t["partitions"]
    }


async def settled(cluster: ApacheKafka, topics: list[str]) -> None:
    """Until every node serves and every partition of `topics` (and of the offsets topic)
    has a leader and all three replicas in sync."""
    for node in cluster.nodes:
        node.wait_ready(time.monotonic() + SETTLE_S)
    wanted = [*topics, "__consumer_offsets"]
    deadline = time.monotonic() + SETTLE_S
    while True:
        try:
            described = await describe(cluster.bootstrap_servers, wanted)
            partitions = [p for t in described for p in t["partitions"]]
            if partitions and all(p["leader"] >= 0 and len(p["isr"]) == 3 for p in partitions):
                return
        except KafkaError:  # metadata from a node that is catching up
            pass
        assert time.monotonic() < deadline, f"partitions not back in sync: {wanted}"
        await asyncio.sleep(0.5)


async def coordinator(harness: Harness) -> int:
    """The node coordinating the harness's group (this makes the offsets topic if new)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=harness.settings.bootstrap_servers)
    await admin.start()
    deadline = time.monotonic() + SETTLE_S
    try:
        while True:
            try:
                node: int = await admin.find_coordinator(harness.settings.group_id)
            except KafkaError:  # the offsets topic is being made
                assert time.monotonic() < deadline, "no group coordinator"
                await asyncio.sleep(0.5)
            else:
                return node
    finally:
        await admin.close()


async def led_by_one_node(cluster: ApacheKafka, tmp_path, name: str, **overrides: Any):
    """A harness whose topics all have the group coordinator as their leader, and its service."""
    harness = Harness(cluster.bootstrap_servers, True, tmp_path)
    await coordinator(harness)
    await settled(cluster, [])
    leader = await coordinator(harness)
    harness.replication = [leader, *(n.node_id for n in cluster.nodes if n.node_id != leader)]
    await harness.start()
    s = harness.settings
    topics = [s.request_topic, s.result_topic, harness.records_topic]
    await settled(cluster, topics)
    assert set((await leaders(cluster.bootstrap_servers, topics)).values()) == {leader}
    return harness, leader, ServiceProcess(harness, name, **overrides)


async def writer(bootstrap: str) -> AIOKafkaProducer:
    """An idempotent acks=all producer: a retry across a failover never duplicates a batch."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    return producer


async def write(producer: AIOKafkaProducer, topic: str, value: Any, key: str) -> int:
    md = await producer.send_and_wait(topic, orjson.dumps(value), key=key.encode(), partition=0)
    return int(md.offset)


async def request_ends(harness: Harness) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=harness.settings.bootstrap_servers)
    await consumer.start()
    try:
        tps = [TopicPartition(harness.settings.request_topic, p) for p in (0, 1)]
        ends = await consumer.end_offsets(tps)
        return {tp.partition: int(o) for tp, o in ends.items()}
    finally:
        await consumer.stop()


async def committed(harness: Harness) -> dict[int, int | None]:
    return {p: await harness.committed(p) for p in (0, 1)}


async def all_committed(harness: Harness, wait_s: float = 60) -> None:
    """Until the group's committed offset is the end of each request partition."""
    ends = await request_ends(harness)
    deadline = time.monotonic() + wait_s
    while (seen := await committed(harness)) != {p: e or None for p, e in ends.items()}:
        assert time.monotonic() < deadline, f"committed {seen}, requests end at {ends}"
        await asyncio.sleep(0.5)


def finished_at(service: ServiceProcess, export_id: str) -> float:
    """When the service logged the result acknowledged (epoch seconds)."""
    event = service.events("export_finished", export_id)[0]
    return datetime.fromisoformat(event["ts"]).timestamp()


def outputs(harness: Harness) -> list[str]:
    return sorted(p.name for p in harness.output_dir.iterdir() if not p.name.startswith("."))


async def readyz(service: ServiceProcess) -> int:
    try:
        status, _ = await asyncio.to_thread(scrape, service.metrics_port, "/readyz")
    except OSError:
        return 0
    return status


async def watch_ready(service: ServiceProcess, seen: list[tuple[float, int]]) -> None:
    while True:
        seen.append((time.monotonic(), await readyz(service)))
        await asyncio.sleep(0.2)


def unready_s(seen: list[tuple[float, int]]) -> float:
    """How long /readyz answered other than 200, from its samples."""
    pairs = itertools.pairwise(seen)
    return sum(later - t for (t, status), (later, _) in pairs if status != 200)


KEYS = 10
ROWS = 50


async def keyed_round(
    harness: Harness,
    service: ServiceProcess,
    producer: AIOKafkaProducer,
    prefix: str,
    kill: KafkaNode | None,
) -> tuple[list[float], float]:
    """Ten exports, each of one key's three batches in a shared range, running: two batches
    each are read, the third is written at t0 (after killing `kill`, if given). The seconds
    from t0 until each result was acknowledged, and until the last batch was written."""
    topic = harness.records_topic
    ids = [f"{prefix}-{k}" for k in range(KEYS)]
    first = None
    for batch in range(2):
        for export_id in ids:
            offset = await write(producer, topic, rows(batch * ROWS, ROWS), export_id)
            first = offset if first is None else first
    assert first is not None
    end = first + 3 * KEYS
    for export_id in ids:
        source = {"topic": topic, "partition": 0, "start_offset": first, "end_offset": end,
                  "key": export_id}  # fmt: skip
        await harness.send_request(harness.request(export_id, first, end, source=source))
    for export_id in ids:
        await service.wait_for_log("export_started", export_id)
    t0 = time.time()
    if kill is not None:
        kill.kill()
    for export_id in ids:
        await write(producer, topic, rows(2 * ROWS, ROWS), export_id)
    written = time.time() - t0
    for export_id in ids:
        await service.wait_for_log("export_finished", export_id, wait_s=90)
    return [finished_at(service, export_id) - t0 for export_id in ids], written


def summary(delays: list[float]) -> str:
    return f"median {statistics.median(delays):.2f} s, max {max(delays):.2f} s"


async def test_killing_the_leader_of_every_partition_mid_export_loses_nothing(cluster, tmp_path):
    """SIGKILL of the broker leading the request, source and result partitions (and the
    group's coordinator) while ten exports run: each gets one result and one output, every
    request is committed, and the service stays up and becomes ready again by itself."""
    harness, leader, service = await led_by_one_node(
        cluster, tmp_path, "leader-killed", max_in_flight=10, timeout_s=120
    )
    victim = node_by_id(cluster, leader)
    producer = await writer(cluster.bootstrap_servers)
    readiness: list[tuple[float, int]] = []
    watcher = None
    try:
        await service.start()
        baseline, baseline_write = await keyed_round(harness, service, producer, "calm", None)
        await all_committed(harness)
        watcher = asyncio.create_task(watch_ready(service, readiness))
        killed, killed_write = await keyed_round(harness, service, producer, "kill", victim)
        results = {
            i: await harness.result(i, wait_s=90) for i in (f"kill-{k}" for k in range(KEYS))
        }
        await all_committed(harness, wait_s=90)
        await service.wait_ready(wait_s=90)  # asserts, too, that it never exited
    finally:
        if watcher is not None:
            watcher.cancel()
        await producer.stop()
        service.stop()
        await harness.stop()
        if not victim.running():
            await restart(victim)
    print(
        f"\n(a) leader {leader} killed: results acknowledged {summary(killed)} after the kill "
        f"(last batch written after {killed_write:.2f} s); without a kill {summary(baseline)} "
        f"after the last batch (written in {baseline_write:.2f} s); "
        f"/readyz not 200 for {unready_s(readiness):.1f} s"
    )
    for export_id, result in results.items():
        assert result["status"] == "completed", result
        assert result["records"] == 3 * ROWS
        assert len(service.events("output_stored", export_id)) == 1
    assert outputs(harness) == sorted(f"{p}-{k}.csv" for p in ("calm", "kill") for k in range(KEYS))
    assert service.starts == 1


async def test_two_of_three_down_nothing_is_acknowledged_or_committed_until_they_return(
    cluster, tmp_path
):
    """With two of three brokers down (min.insync.replicas=2) no result is acknowledged and
    no request offset committed; once they return every export is done, once."""
    harness, leader, service = await led_by_one_node(
        cluster, tmp_path, "two-down", max_in_flight=2, timeout_s=120
    )
    others = [n for n in cluster.nodes if n.node_id != leader]
    ids = [f"x-{i}" for i in range(10)]
    try:
        await service.start()
        start, end = await harness.write_batches([rows(i * 100, 100) for i in range(5)])
        for export_id in ids:
            await harness.send_request(harness.request(export_id, start, end, format="pdf"))
        await service.wait_for_log("export_started")
        for node in others:
            node.kill()
        await asyncio.sleep(1)  # acknowledgements already on their way arrive
        finished = {e["export_id"] for e in service.events("export_finished")}
        before = await committed(harness)
        assert len(finished) < len(ids), "every export finished before the brokers went"
        await asyncio.sleep(WINDOW_S)
        assert await committed(harness) == before
        assert {e["export_id"] for e in service.events("export_finished")} == finished
        # Exports went on while results could not be acknowledged, but no more of them than
        # max_in_flight: the unacknowledged ones keep the request partitions paused.
        stored = {e["export_id"] for e in service.events("output_stored")}
        assert 1 <= len(stored - finished) <= 2, (stored, finished)
        assert service.process is not None
        assert service.process.poll() is None  # still running
        for node in others:
            await restart(node)
        results = {i: await harness.result(i, wait_s=90) for i in ids}
        await all_committed(harness, wait_s=90)
        await service.wait_ready(wait_s=90)
    finally:
        service.stop()
        await harness.stop()
        for node in others:
            if not node.running():
                await restart(node)
    for export_id, result in results.items():
        assert result["status"] == "completed", result
        assert result["records"] == 500
        assert len(service.events("output_stored", export_id)) == 1
    assert outputs(harness) == sorted(f"{i}.pdf" for i in ids)
    assert not list(harness.output_dir.glob(".*.part"))
    assert service.starts == 1


def mixed(harness: Harness, n: int, start: int, end: int) -> tuple[dict[str, Any], str | None]:
    """Request number `n` of the rolling restart's hundred, and the output it makes (if any):
    CSV and PDF exports, requests that break the schema, sources that do not exist."""
    export_id = f"mix-{n:03}"
    kind = n % 10
    if kind == 8:
        return harness.request(export_id, start, end, format="docx"), None
    if kind == 9:
        source = {"topic": f"{harness.records_topic}-absent", "partition": 0,
                  "start_offset": 0, "end_offset": 1}  # fmt: skip
        return harness.request(export_id, 0, 1, source=source), None
    fmt = "pdf" if kind in {2, 5} else "csv"
    return harness.request(export_id, start, end, format=fmt), f"{export_id}.{fmt}"


async def test_a_rolling_restart_under_a_hundred_mixed_requests_loses_nothing(cluster, tmp_path):
    """Each broker in turn stopped with SIGTERM and started again, waiting for it to rejoin,
    while a hundred mixed requests come in: every one gets its result, no output twice."""
    harness = Harness(cluster.bootstrap_servers, True, tmp_path, replication=3)
    await coordinator(harness)
    await settled(cluster, [])
    service = ServiceProcess(harness, "rolling", timeout_s=120)
    producer = await writer(cluster.bootstrap_servers)
    s = harness.settings
    topics = [s.request_topic, s.result_topic, harness.records_topic]
    plan: dict[str, str | None] = {}

    async def send_all(start: int, end: int) -> None:
        for n in range(100):
            body, output = mixed(harness, n, start, end)
            plan[body["export_id"]] = output
            await producer.send_and_wait(
                s.request_topic, orjson.dumps(body), key=body["export_id"].encode()
            )
            await asyncio.sleep(0.25)

    try:
        await harness.start()
        await settled(cluster, topics)
        await service.start()
        start, end = await harness.write_batches([rows(0, 10), rows(10, 10)])
        sender = asyncio.create_task(send_all(start, end))
        began = time.monotonic()
        sent_before = len(plan)
        for node in cluster.nodes:
            await asyncio.to_thread(node.stop)  # a controlled shutdown
            await restart(node)
            await settled(cluster, topics)
        rolled = time.monotonic() - began
        sent_during = len(plan) - sent_before
        await sender
        results = {i: await harness.result(i, wait_s=90) for i in plan}
        await all_committed(harness, wait_s=90)
        await service.wait_ready(wait_s=90)
    finally:
        await producer.stop()
        service.stop()
        await harness.stop()
        for node in cluster.nodes:
            if not node.running():
                await restart(node)
    print(f"\n(b) rolling restart took {rolled:.1f} s; {sent_during} of 100 requests sent then")
    for export_id, output in plan.items():
        result = results[export_id]
        if output is None:
            assert result["status"] == "failed", result
            assert result["error"]["reason"] in {"invalid_request", "source_unavailable"}
        else:
            assert result["status"] == "completed", result
            assert result["records"] == 20
            assert len(service.events("output_stored", export_id)) == 1
    assert outputs(harness) == sorted(o for o in plan.values() if o is not None)
    assert service.starts == 1
