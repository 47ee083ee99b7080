"""Metric bookkeeping that needs no broker: label caps and size classes."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from consumer.errors import InvalidRequest
from consumer.metrics import ExportMetrics, size_class
from consumer.runner import failed_result


class TestExportMetrics:
    def test_user_label_is_capped(self):
        """Past the cap, new requesters count as `other`; known ones keep their label."""
        metrics = ExportMetrics(CollectorRegistry(), max_users=2)
        assert metrics.user_label("alice") == "alice"
        assert metrics.user_label(None) == "anonymous"
        assert metrics.user_label("mallory") == "other"
        assert metrics.user_label("alice") == "alice"

    def test_failure_counts_by_reason_and_success_rate_drops(self):
        """A published failure moves the failure counter and the success rate."""
        registry = CollectorRegistry()
        metrics = ExportMetrics(registry)
        result = failed_result(
            "x", InvalidRequest("format: bad"), fmt=None, source=None, duration_ms=1
        )
        metrics.result_published(result, "bob")
        labels = {"reason": "invalid_request", "format": "unknown"}
        assert registry.get_sample_value("export_fail_total", labels) == 1
        assert registry.get_sample_value("export_success_rate", {"format": "unknown"}) == 0

    def test_size_classes(self):
        """small < 10,000 <= medium < 100,000 <= large."""
        assert [size_class(n) for n in (0, 9_999, 10_000, 99_999, 100_000)] == [
            "small", "small", "medium", "medium", "large",
        ]  # fmt: skip
