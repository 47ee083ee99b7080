"""assert-export's arithmetic: p95 from buckets and the six checks."""

from __future__ import annotations

import math

from producer_tools.assert_metrics import evaluate, p95_from_buckets


def test_p95_interpolates_inside_the_bucket():
    """95 of 100 observations at or below 100 ms, the rest up to 250, gives p95 = 100."""
    assert p95_from_buckets({10.0: 50, 100.0: 95, 250.0: 100, math.inf: 100}) == 100.0
    assert p95_from_buckets({100.0: 0, 200.0: 100, math.inf: 100}) == 195.0
    assert p95_from_buckets({math.inf: 0}) == 0.0


def test_missing_metrics_fail_the_first_check():
    """An exposition without the nine series fails and names what is missing."""
    checks = evaluate("# TYPE export_queue_depth gauge\nexport_queue_depth 0\n")
    assert not checks[0].ok
    assert "export_requests" in checks[0].value


def test_a_new_instance_passes_until_it_completes_an_export():
    """No bytes is fine while nothing has completed; once something has, no bytes fails."""
    from prometheus_client import CollectorRegistry, generate_latest

    from consumer.metrics import ExportMetrics

    metrics = ExportMetrics(CollectorRegistry())
    fresh = generate_latest(metrics.registry).decode()
    assert all(check.ok for check in evaluate(fresh)), evaluate(fresh)
    metrics.requests.labels(format="csv", status="completed", user="a").inc()
    bytes_check = evaluate(generate_latest(metrics.registry).decode())[-1]
    assert not bytes_check.ok
    assert bytes_check.value == "0"
