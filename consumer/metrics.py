"""The contract's nine metrics, updated where the events happen."""

from __future__ import annotations

import os
import time
from collections import deque
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from consumer.errors import FailureReason
from consumer.structs import ExportFormat, ResultStatus

if TYPE_CHECKING:
    from collections.abc import Callable

    from consumer.structs import ExportResult

LATENCY_BUCKETS_MS = (
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000,
    30_000, 60_000, 120_000, 300_000, 600_000,
)  # fmt: skip
SMALL_BELOW = 10_000
LARGE_FROM = 100_000
SIZES = ("small", "medium", "large")
FINAL_STATUSES = (ResultStatus.COMPLETED, ResultStatus.FAILED)
THROUGHPUT_WINDOW_S = 60.0
SUCCESS_WINDOW = 100
DEFAULT_MAX_USERS = 50
OTHER_USER = "other"
NO_USER = "anonymous"
UNKNOWN_FORMAT = "unknown"
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def size_class(records: int) -> str:
    """`small` < 10,000 records <= `medium` < 100,000 <= `large`."""
    if records < SMALL_BELOW:
        return "small"
    return "medium" if records < LARGE_FROM else "large"


def resident_memory_bytes(pid: int | str = "self") -> int:
    """A process's resident set size, from /proc; 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:  # noqa: PTH123 - a hot, tiny read
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except OSError:
        return 0


class ExportMetrics:
    """Owns the series on one registry (a fresh one per service, so tests can run several)."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        max_users: int = DEFAULT_MAX_USERS,
        memory_probe: Callable[[], int] = resident_memory_bytes,
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self._memory_probe = memory_probe
        self._max_users = max_users
        self._users: set[str] = set()
        reg = self.registry
        self.requests = Counter(
            "export_requests", "Export requests finished, by outcome",
            ["format", "status", "user"], registry=reg,
        )  # fmt: skip
        self.latency = Histogram(
            "export_latency_ms", "Time from an export's start to its result, in ms",
            ["format", "size"], buckets=LATENCY_BUCKETS_MS, registry=reg,
        )  # fmt: skip
        self.bytes = Counter(
            "export_bytes", "Bytes of output written", ["format", "status"], registry=reg
        )
        self.records = Counter(
            "export_records", "Records written to outputs", ["format"], registry=reg
        )
        self.running = Gauge("export_concurrent_running", "Exports running now", registry=reg)
        self.queue_depth = Gauge(
            "export_queue_depth", "Requests received and waiting for a slot", registry=reg
        )
        self.failures = Counter(
            "export_fail", "Failed exports, by reason", ["reason", "format"], registry=reg
        )
        self.memory = Gauge(
            "export_memory_bytes", "Resident memory sampled while exports of a format run",
            ["format"], registry=reg,
        )  # fmt: skip
        self.throughput = Gauge(
            "export_throughput_ops_per_sec", "Exports finished per second over the last 60 s",
            ["format"], registry=reg,
        )  # fmt: skip
        self.success_rate = Gauge(
            "export_success_rate", "Completed / finished over the last 100 finished exports",
            ["format"], registry=reg,
        )  # fmt: skip
        # Beyond the nine: arrivals, so "requests arrive but nothing finishes" is expressible.
        self.received = Counter(
            "export_received", "Messages taken from the request topic", registry=reg
        )
        self.backlog = Gauge(
            "export_request_backlog",
            "Requests on this instance's request partitions not yet taken (end offset - position)",
            registry=reg,
        )
        self.loop_lag = Histogram(
            "export_event_loop_lag_seconds",
            "How much later than asked the event loop woke from a 100 ms sleep",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=reg,
        )
        # 1 while /readyz would answer 200, so alerts need no blackbox probe.
        self.ready = Gauge(
            "export_ready", "1 when joined, broker reachable and not draining", registry=reg
        )
        self._finished_at: dict[str, deque[float]] = {}
        self._outcomes: dict[str, deque[bool]] = {}
        self._running_by_format: dict[str, int] = {}
        for fmt in ExportFormat:
            self._track_format(fmt.value)
            self._start_at_zero(fmt.value)

    def _start_at_zero(self, fmt: str) -> None:
        """Every series whose labels are known in advance, on the page from the first scrape
        (at zero), so rates and ratios exist on a healthy new instance; only the `user`
        label of `export_requests_total` waits for a request."""
        for status in FINAL_STATUSES:
            self.bytes.labels(format=fmt, status=status.value)
        for reason in FailureReason:
            self.failures.labels(reason=reason.value, format=fmt)
        for size in SIZES:
            self.latency.labels(format=fmt, size=size)
        self.records.labels(format=fmt)
        self.memory.labels(format=fmt)

    def _track_format(self, fmt: str) -> None:
        if fmt in self._finished_at:
            return
        times: deque[float] = deque()
        outcomes: deque[bool] = deque(maxlen=SUCCESS_WINDOW)
        self._finished_at[fmt] = times
        self._outcomes[fmt] = outcomes
        self._running_by_format[fmt] = 0

        def throughput() -> float:
            horizon = time.monotonic() - THROUGHPUT_WINDOW_S
            while times and times[0] < horizon:
                times.popleft()
            return len(times) / THROUGHPUT_WINDOW_S

        def success() -> float:
            # No exports yet is not a failure: report 1 so alerts stay quiet.
            return sum(outcomes) / len(outcomes) if outcomes else 1.0

        self.throughput.labels(format=fmt).set_function(throughput)
        self.success_rate.labels(format=fmt).set_function(success)

    def user_label(self, requested_by: str | None) -> str:
        """`requested_by` as a label, capped in distinct values; the rest are `other`."""
        user = requested_by or NO_USER
        if user in self._users:
            return user
        if len(self._users) < self._max_users:
            self._users.add(user)
            return user
        return OTHER_USER

    def export_started(self, fmt: ExportFormat) -> None:
        self._running_by_format[fmt.value] += 1
        # Sampled at the edges too, so an export shorter than the sampling period shows.
        self.memory.labels(format=fmt.value).set(self._memory_probe())

    def export_ended(self, fmt: ExportFormat) -> None:
        self.memory.labels(format=fmt.value).set(self._memory_probe())
        self._running_by_format[fmt.value] -= 1

    def sample_memory(self) -> None:
        """Record resident memory against each format that has an export running now."""
        rss = self._memory_probe()
        for fmt, count in self._running_by_format.items():
            if count > 0:
                self.memory.labels(format=fmt).set(rss)

    def result_published(self, result: ExportResult, requested_by: str | None) -> None:
        """Count a finished export once its result is on the result topic."""
        fmt = result.format.value if result.format else UNKNOWN_FORMAT
        self._track_format(fmt)
        status = result.status.value
        self.requests.labels(format=fmt, status=status, user=self.user_label(requested_by)).inc()
        self.bytes.labels(format=fmt, status=status).inc(result.bytes)
        self.latency.labels(format=fmt, size=size_class(result.records)).observe(result.duration_ms)
        if result.status is ResultStatus.COMPLETED:
            self.records.labels(format=fmt).inc(result.records)
        elif result.error is not None:
            self.failures.labels(reason=result.error.reason.value, format=fmt).inc()
        self._finished_at[fmt].append(time.monotonic())
        self._outcomes[fmt].append(result.status is ResultStatus.COMPLETED)
