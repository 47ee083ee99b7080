"""The metrics port: liveness, readiness around joining the group, and the exposition."""

from __future__ import annotations

import asyncio
import time

from consumer.service import ExportService
from tests.integration.harness import metric_value, scrape


async def test_readyz_is_503_until_the_group_is_joined_then_200(harness):
    """/readyz says why it is not ready while joining, then 200; /healthz is 200 throughout."""
    service = ExportService(harness.make_settings())
    task = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(service.started.wait(), 30)
        port = service.metrics_port
        assert port is not None
        first = await asyncio.to_thread(scrape, port, "/readyz")
        assert first == (503, "not ready: starting\n")
        assert (await asyncio.to_thread(scrape, port, "/healthz"))[0] == 200
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
        service.request_stop()
        await asyncio.wait_for(task, 60)
