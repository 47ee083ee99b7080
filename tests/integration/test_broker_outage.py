"""The broker goes away for 15 s during traffic and comes back; nothing is lost.

Runs on a broker of its own, which it stops (or, on Apache Kafka, kills with SIGKILL) and
starts: Apache Kafka, with the idempotent producer on, keeps its data across the restart.
On the embedded Tansu, which keeps its data in memory only, the test puts back after the
restart what a durable broker would still hold (topics, requests at their old offsets,
records). Either way the service reconnects on its own.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from consumer.topics import ensure_topics
from tests.apache_kafka import ApacheKafka
from tests.conftest import RestartableBroker
from tests.integration.harness import Harness, scrape
from tests.integration.processes import ServiceProcess

OUTAGE_S = 15.0


def rows(first: int, count: int) -> list[dict[str, Any]]:
    return [{"id": first + i, "name": f"name {first + i}", "amount": i} for i in range(count)]


async def readyz(service: ServiceProcess) -> tuple[int, str]:
    return await asyncio.to_thread(scrape, service.metrics_port, "/readyz")


@pytest.mark.parametrize(
    "how", ["stop", pytest.param("kill", marks=pytest.mark.needs_apache_kafka)]
)
async def test_broker_outage_not_ready_meanwhile_then_reconnects_and_loses_nothing(
    tmp_path, own_broker, how
):
    """Broker stopped or killed for 15 s mid-export: /readyz 503 meanwhile, then every
    export done once."""
    broker = own_broker.broker
    harness = Harness(broker.bootstrap_servers, own_broker.idempotence, tmp_path=tmp_path)
    trickle = f"{harness.records_topic}-trickle"
    service = ServiceProcess(harness, "outage", timeout_s=120)
    try:
        await harness.start()
        await ensure_topics(harness.settings, {trickle: 1})
        await service.start()
        before = harness.request("before", *await harness.write_batches([rows(0, 10)]))
        await harness.send_request(before)
        assert (await harness.result("before"))["status"] == "completed"
        # In flight across the outage: 2 of its 4 batches exist when the broker goes.
        await harness.write_batches([rows(0, 1), rows(1, 1)], topic=trickle)
        source = {"topic": trickle, "partition": 0, "start_offset": 0, "end_offset": 4}
        await harness.send_request(harness.request("through", 0, 4, source=source))
        await service.wait_for_log("export_started", "through")

        await _outage(broker, service, how)
        broker.start()
        if own_broker.durable:
            await harness.write_batches([rows(2, 1), rows(3, 1)], topic=trickle)
        else:
            # The memory-only broker comes back empty. Put back what a durable one would
            # still have: the topics, the two requests at their old offsets (same keys,
            # same order) and all the batches.
            await harness.start_again()
            await ensure_topics(harness.settings, {trickle: 1})
            await harness.send_request(before)
            await harness.send_request(harness.request("through", 0, 4, source=source))
            await harness.write_batches([rows(i, 1) for i in range(4)], topic=trickle)
        # The in-flight export is then either finished from where it read, or (if the
        # rejoin cancelled it, uncommitted) redelivered and redone.
        await service.wait_ready(wait_s=90)
        after = harness.request("after", *await harness.write_batches([rows(0, 7)]))
        await harness.send_request(after)
        after_result = await harness.result("after", wait_s=90)
        through_result = await harness.result("through", wait_s=90)
    finally:
        service.stop()
        await harness.stop()
    assert after_result["status"] == "completed"
    assert after_result["records"] == 7
    # The export that was reading when the broker went is done once, whole, from the start.
    assert through_result["status"] == "completed", str(through_result)
    assert through_result["records"] == 4
    assert through_result["replayed"] is False
    assert len(service.events("output_stored", "through")) == 1  # made once, either way
    outputs = sorted(p.name for p in harness.output_dir.iterdir() if not p.name.startswith("."))
    assert outputs == ["after.csv", "before.csv", "through.csv"]
    assert not list(harness.output_dir.glob(".*.part"))
    assert len(service.events("broker_unreachable")) >= 1
    assert len(service.events("broker_reachable")) >= 1
    assert service.starts == 1  # it reconnected by itself; no restart


async def _outage(broker: RestartableBroker, service: ServiceProcess, how: str) -> None:
    """Stop (or kill) the broker for OUTAGE_S; the service must say it is not ready, and why."""
    if how == "kill":
        assert isinstance(broker, ApacheKafka)
        broker.kill()  # no controlled shutdown: the restart recovers the log
    else:
        broker.stop()
    stopped = time.monotonic()
    status, body = await readyz(service)
    while status == 200:
        await asyncio.sleep(0.2)
        status, body = await readyz(service)
    assert status == 503, body
    assert body.startswith("not ready: broker unreachable"), body
    await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)))
    assert (await readyz(service))[0] == 503


@pytest.mark.needs_apache_kafka
async def test_an_export_whose_turn_comes_while_the_broker_is_away_waits_for_it(
    tmp_path, own_broker
):
    """An export that starts reading while the broker is down waits for it, then completes."""
    broker = own_broker.broker
    harness = Harness(broker.bootstrap_servers, own_broker.idempotence, tmp_path=tmp_path)
    # A session that outlives the outage: no rebalance cancels and redelivers the export,
    # so what it does when it meets the missing broker is what gets published.
    # The deadline falls inside the outage for the first export, and after it for the second,
    # which begins once the first has timed out: 12 s against 15 s away (plus the restart).
    service = ServiceProcess(
        harness, "away", timeout_s=12, session_timeout_ms=60_000, heartbeat_interval_ms=1000
    )
    try:
        await harness.start()
        await service.start()
        start, end = await harness.write_batches([rows(0, 2), rows(2, 2)])
        # The first request for "x" waits for records never written until its deadline;
        # the second, for the same id, waits for the first (one export per id at a time)
        # and begins reading once the first has timed out, while the broker is away.
        await harness.send_request(harness.request("x", start, end + 100))
        await harness.send_request(harness.request("x", start, end))
        await service.wait_for_log("export_started", "x", count=2)
        await _outage(broker, service, "stop")
        broker.start()
        first = await harness.result("x", wait_s=90)
        second = await harness.result("x", nth=2, wait_s=90)
    finally:
        service.stop()
        await harness.stop()
    assert (first["status"], first["error"]["reason"]) == ("failed", "timeout")
    assert (second["status"], second["records"]) == ("completed", 4), str(second)
