"""Every metric moves as the contract says, scraped over HTTP from a service under real traffic."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from prometheus_client.parser import text_string_to_metric_families

from consumer.service import ExportService
from consumer.settings import load_settings
from consumer.topics import ensure_topics
from tests.integration.harness import metric_value, scrape

MEDIUM = 10_000


def rows(first: int, count: int) -> list[dict[str, object]]:
    return [{"id": first + i, "name": f"name {first + i}", "amount": i} for i in range(count)]


async def test_mixed_traffic_moves_every_metric(harness):
    """CSV and PDF, small and medium, completed and failed: each series counts exactly that."""
    small = await harness.write_batches([rows(0, 50)])
    medium = await harness.write_batches([rows(i, 1000) for i in range(0, MEDIUM, 1000)])
    bad = await harness.write_batches([b"not json"])
    requests = [
        harness.request("csv-1", *small, requested_by="alice"),
        harness.request("csv-2", *small, requested_by="bob"),
        harness.request("csv-medium", *medium, requested_by="carol"),
        harness.request("pdf-1", *small, format="pdf", requested_by="alice"),
        harness.request("csv-bad", *bad, requested_by="dave"),  # bad_record
        harness.request("csv-invalid", *small, columns=[], requested_by="mallory"),
        harness.request("pdf-missing", *small, format="pdf", requested_by="alice",
                        source={"topic": "no-such-topic", "partition": 0,
                                "start_offset": 0, "end_offset": 5}),
    ]  # fmt: skip
    async with harness.service(metrics_max_users="4") as service:
        port = service.metrics_port
        assert port is not None
        _, before = await asyncio.to_thread(scrape, port)
        for body in requests:
            await harness.send_request(body)
        results = {body["export_id"]: await harness.result(body["export_id"]) for body in requests}
        _, text = await asyncio.to_thread(scrape, port)

    def value(name: str, **labels: str) -> float | None:
        return metric_value(text, name, **labels)

    assert metric_value(before, "export_requests_total", format="csv", status="completed") is None
    completed = {k: r for k, r in results.items() if r["status"] == "completed"}
    assert sorted(completed) == ["csv-1", "csv-2", "csv-medium", "pdf-1"]
    # Requests by format and status: 7 in all, one per result.
    assert value("export_requests_total", format="csv", status="completed") is not None
    counts = _samples(text, "export_requests_total")
    assert sum(counts.values()) == len(requests)
    by_outcome: dict[tuple[str, str], float] = {}
    for labels, count in counts.items():
        key = (labels["format"], labels["status"])
        by_outcome[key] = by_outcome.get(key, 0) + count
    assert by_outcome == {("csv", "completed"): 3, ("pdf", "completed"): 1,
                          ("csv", "failed"): 2, ("pdf", "failed"): 1}  # fmt: skip
    # Five distinct requesters, a cap of 4: the one seen last counts as `other`.
    users = {labels["user"] for labels in counts}
    assert len(users - {"other"}) == 4
    assert "other" in users
    assert users - {"other"} < {"alice", "bob", "carol", "dave", "mallory"}
    # Failures by reason and format.
    assert value("export_fail_total", reason="bad_record", format="csv") == 1
    assert value("export_fail_total", reason="invalid_request", format="csv") == 1
    assert value("export_fail_total", reason="source_unavailable", format="pdf") == 1
    # Bytes and records are the sums of what the results report.
    csv_bytes = sum(r["bytes"] for k, r in completed.items() if k.startswith("csv"))
    assert value("export_bytes_total", format="csv", status="completed") == csv_bytes
    assert (
        value("export_bytes_total", format="pdf", status="completed") == completed["pdf-1"]["bytes"]
    )
    assert value("export_records_total", format="csv") == 100 + MEDIUM
    # Latency: one observation per result, in its size class; buckets 10 ms to 10 minutes.
    assert value("export_latency_ms_count", format="csv", size="small") == 4
    assert value("export_latency_ms_count", format="csv", size="medium") == 1
    assert value("export_latency_ms_count", format="pdf", size="small") == 2
    assert value("export_latency_ms_bucket", format="csv", size="small", le="10.0") is not None
    assert value("export_latency_ms_bucket", format="csv", size="small", le="600000.0") == 4
    # Windows: 5 csv and 2 pdf finished within the last 60 s; success = completed / finished.
    assert value("export_throughput_ops_per_sec", format="csv") == pytest.approx(5 / 60)
    assert value("export_throughput_ops_per_sec", format="pdf") == pytest.approx(2 / 60)
    assert value("export_success_rate", format="csv") == pytest.approx(3 / 5)
    assert value("export_success_rate", format="pdf") == pytest.approx(1 / 2)
    # Memory was sampled while each format ran; nothing runs or waits now.
    assert (value("export_memory_bytes", format="csv") or 0) > 10_000_000
    assert (value("export_memory_bytes", format="pdf") or 0) > 10_000_000
    assert value("export_concurrent_running") == 0
    assert value("export_queue_depth") == 0
    # Beyond the nine: arrivals and readiness, which the alert rules use.
    assert metric_value(before, "export_received_total") == 0
    assert value("export_received_total") == len(requests)
    assert value("export_ready") == 1


async def test_a_new_instance_has_every_known_series_at_zero(harness, capsys):
    """Before any request, every series whose labels are known is on the page at zero (so
    rates and ratios have data), only export_requests_total waits, and assert-export passes."""
    from consumer.errors import FailureReason
    from consumer.structs import ExportFormat
    from producer_tools.assert_metrics import main as assert_export

    async with harness.service() as service:
        port = service.metrics_port
        assert port is not None
        _, text = await asyncio.to_thread(scrape, port)
        status = await asyncio.to_thread(
            assert_export, ["--url", f"http://127.0.0.1:{port}/metrics"]
        )
    formats = [f.value for f in ExportFormat]
    for fmt in formats:
        for reason in FailureReason:
            assert metric_value(text, "export_fail_total", reason=reason.value, format=fmt) == 0
        for status_label in ("completed", "failed"):
            assert metric_value(text, "export_bytes_total", format=fmt, status=status_label) == 0
        for size in ("small", "medium", "large"):
            assert metric_value(text, "export_latency_ms_count", format=fmt, size=size) == 0
            assert (
                metric_value(text, "export_latency_ms_bucket", format=fmt, size=size, le="+Inf")
                == 0
            )
        assert metric_value(text, "export_records_total", format=fmt) == 0
        assert metric_value(text, "export_memory_bytes", format=fmt) == 0
        assert metric_value(text, "export_throughput_ops_per_sec", format=fmt) == 0
        assert metric_value(text, "export_success_rate", format=fmt) == 1
    assert metric_value(text, "export_requests_total") is None
    assert "# TYPE export_requests_total counter" in text
    assert status == 0, capsys.readouterr().out


def _samples(text: str, name: str) -> dict[_Labels, float]:
    found: dict[_Labels, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[_Labels(sample.labels)] = float(sample.value)
    return found


class _Labels(dict[str, str]):
    """A hashable label set, so samples can key a dict."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))


async def test_fifteen_at_once_never_run_more_than_five(harness):
    """15 requests at once: 5 run, the other 10 wait in Kafka (the backlog), never in memory."""
    start, _ = await harness.write_batches([rows(0, 1)], key="warm")
    end = start + 16  # offsets start+1 .. start+15 are written only later
    seen_running: list[float] = []
    seen_queue: list[float] = []
    seen_backlog: list[float] = []
    async with harness.service(max_in_flight="5", timeout_s="60") as service:
        port = service.metrics_port
        assert port is not None
        stop = asyncio.Event()
        all_slots_taken = asyncio.Event()
        rest_left_in_kafka = asyncio.Event()
        backlog_cleared = asyncio.Event()

        async def poll() -> None:
            while not stop.is_set():
                _, text = await asyncio.to_thread(scrape, port)
                seen_running.append(metric_value(text, "export_concurrent_running") or 0)
                seen_queue.append(metric_value(text, "export_queue_depth") or 0)
                seen_backlog.append(metric_value(text, "export_request_backlog") or 0)
                if seen_running[-1] == 5:
                    all_slots_taken.set()
                if seen_backlog[-1] == 10:
                    rest_left_in_kafka.set()
                if rest_left_in_kafka.is_set() and seen_backlog[-1] == 0:
                    backlog_cleared.set()
                await asyncio.sleep(0.02)

        poller = asyncio.create_task(poll())
        ids = [f"many-{i}" for i in range(15)]
        for i, export_id in enumerate(ids):
            source = {"topic": harness.records_topic, "partition": 0,
                      "start_offset": start, "end_offset": end, "key": f"k{i}"}  # fmt: skip
            await harness.send_request(harness.request(export_id, start, end, source=source))
        async with asyncio.timeout(30):
            # Every slot holds an export waiting for its records; fetching has paused.
            await all_slots_taken.wait()
            await rest_left_in_kafka.wait()
        await harness.write_batches([rows(100 + i, 1) for i in range(15)], key=None)
        for i in range(15):
            await harness.write_batches([rows(200 + i, 2)], key=f"k{i}")
        results = [await harness.result(export_id, wait_s=60) for export_id in ids]
        async with asyncio.timeout(30):
            await backlog_cleared.wait()
        stop.set()
        await poller
    assert [r["status"] for r in results] == ["completed"] * 15
    assert max(seen_running) == 5
    assert max(seen_queue) <= 100
    assert max(seen_backlog) == 10
    assert len(seen_running) > 20


async def test_readyz_reports_a_lost_broker_and_recovers(tmp_path, own_broker):
    """With the broker gone, /readyz is 503 naming it and export_ready 0; when back, 200 and 1."""
    broker = own_broker.broker
    settings = load_settings({
        "bootstrap_servers": broker.bootstrap_servers,
        "enable_idempotence": str(own_broker.idempotence).lower(),
        "output_dir": str(tmp_path), "metrics_host": "127.0.0.1", "metrics_port": "0",
        "session_timeout_ms": "3000", "heartbeat_interval_ms": "500", "group_id": "ready-test",
    })  # fmt: skip
    await ensure_topics(settings, {settings.request_topic: 1, settings.result_topic: 1})
    service = ExportService(settings)
    task = asyncio.create_task(service.run())
    try:
        await _wait_for_readyz(service, 200)
        broker.stop()
        _, body = await _wait_for_readyz(service, 503)
        assert body.startswith("not ready: broker unreachable"), body
        assert await _ready_gauge(service) == 0
        broker.start()  # Tansu comes back empty, which is enough to answer
        await _wait_for_readyz(service, 200, wait_s=60)
        assert await _ready_gauge(service) == 1
    finally:
        service.request_stop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(task, 60)


async def _ready_gauge(service: ExportService) -> float | None:
    assert service.metrics_port is not None
    _, text = await asyncio.to_thread(scrape, service.metrics_port)
    return metric_value(text, "export_ready")


async def _wait_for_readyz(
    service: ExportService, want: int, wait_s: float = 30
) -> tuple[int, str]:
    async with asyncio.timeout(wait_s):
        while True:
            if service.metrics_port is not None:
                status, body = await asyncio.to_thread(scrape, service.metrics_port, "/readyz")
                if status == want:
                    return status, body
            await asyncio.sleep(0.1)
