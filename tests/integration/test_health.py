"""The metrics port: liveness, readiness around joining the group, and the exposition."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer

from consumer.service import ExportService
from tests.integration.harness import metric_value, scrape


async def test_readyz_is_503_until_the_group_is_joined_then_200(harness):
    """/readyz says why it is not ready while joining, then 200; /healthz is 200 throughout.

    Another member holds the group first and answers the rebalance only at its next
    heartbeat (3 s), so the join is still under way when /readyz is asked (with the test
    broker's rebalance delay of 0 a join alone can finish before the first scrape)."""
    settings = harness.make_settings()
    holder = AIOKafkaConsumer(
        settings.request_topic,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=settings.group_id,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=3_000,
    )
    await holder.start()
    service = ExportService(settings)
    task: asyncio.Task[None] | None = None
    try:
        while not holder.assignment():  # noqa: ASYNC110 - the group's state, no event
            await asyncio.sleep(0.05)
        task = asyncio.create_task(service.run())
        await asyncio.wait_for(service.started.wait(), 30)
        port = service.metrics_port
        assert port is not None
        first = await asyncio.to_thread(scrape, port, "/readyz")
        assert first == (503, "not ready: starting\n")
        assert (await asyncio.to_thread(scrape, port, "/healthz"))[0] == 200
        await holder.stop()  # leaving the group ends the rebalance
        deadline = time.monotonic() + 30
        while (await asyncio.to_thread(scrape, port, "/readyz"))[0] != 200:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        status, text = await asyncio.to_thread(scrape, port, "/metrics")
        assert status == 200
        for name in (
            "export_concurrent_running", "export_queue_depth",
            "export_success_rate", "export_throughput_ops_per_sec",
        ):  # fmt: skip
            assert f"# TYPE {name} gauge" in text
        assert metric_value(text, "export_success_rate", format="csv") == 1.0
        assert (await asyncio.to_thread(scrape, port, "/nope"))[0] == 404
    finally:
        await holder.stop()
        service.request_stop()
        if task is not None:
            await asyncio.wait_for(task, 60)


async def test_assert_export_passes_after_real_traffic_and_fails_on_a_bad_bound(harness):
    """assert-export checks a live service: all six hold after a successful export."""
    import sys

    start, end = await harness.write_batches([[{"id": 1}, {"id": 2}]])
    async with harness.service() as service:
        await harness.send_request(harness.request("metered", start, end))
        assert (await harness.result("metered"))["status"] == "completed"
        url = f"http://127.0.0.1:{service.metrics_port}/metrics"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "producer_tools.assert_metrics", "--url", url,
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await proc.communicate()
        # A failed export drops the csv success rate to 0.5: the command must say so.
        await harness.send_request(harness.request("unmetered", 0, 1, columns=[]))
        await harness.result("unmetered")
        bad = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "producer_tools.assert_metrics", "--url", url,
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        bad_out, _ = await bad.communicate()
    lines = out.decode().splitlines()
    assert proc.returncode == 0, out.decode()
    assert len(lines) == 6
    assert all(line.startswith("ok") for line in lines)
    assert bad.returncode == 1
    assert "FAIL export_success_rate" in bad_out.decode()
