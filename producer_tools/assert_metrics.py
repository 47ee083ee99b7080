"""`assert-export`: scrape /metrics and check the contract's six assertions."""

from __future__ import annotations

import argparse
import math
import sys
import urllib.request
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client.parser import text_string_to_metric_families

if TYPE_CHECKING:
    from collections.abc import Sequence

    from prometheus_client.metrics_core import Metric

NINE = (
    "export_requests", "export_latency_ms", "export_bytes", "export_concurrent_running",
    "export_queue_depth", "export_fail", "export_memory_bytes",
    "export_throughput_ops_per_sec", "export_success_rate",
)  # fmt: skip
P95_BOUND_MS = 10_000.0
SUCCESS_BOUND = 0.95
RUNNING_BOUND = 5
QUEUE_BOUND = 100
EXIT_FAILED = 1


@dataclass(frozen=True, slots=True)
class Check:
    """One assertion: what was measured, the bound, and whether it holds."""

    name: str
    value: str
    bound: str
    ok: bool


def p95_from_buckets(buckets: dict[float, float]) -> float:
    """The 95th percentile from cumulative buckets, interpolated as PromQL does."""
    return quantile_from_buckets(buckets, 0.95)


def quantile_from_buckets(buckets: dict[float, float], q: float) -> float:
    """A quantile from cumulative buckets (`le` -> count), as `histogram_quantile` does."""
    edges = sorted(buckets)
    total = buckets.get(math.inf, 0.0)
    if total == 0:
        return 0.0
    rank = q * total
    lower_edge, lower_count = 0.0, 0.0
    for edge in edges:
        count = buckets[edge]
        if count >= rank:
            if math.isinf(edge):
                return lower_edge
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1.0
            return lower_edge + (edge - lower_edge) * share
        lower_edge, lower_count = edge, count
    return lower_edge


def evaluate(text: str) -> list[Check]:
    """The six checks on one exposition."""
    families: dict[str, Metric] = {f.name: f for f in text_string_to_metric_families(text)}
    missing = [name for name in NINE if name not in families]

    def samples(family: str, suffix: str = "") -> list[tuple[dict[str, str], float]]:
        found = families.get(family)
        if found is None:
            return []
        return [(s.labels, s.value) for s in found.samples if s.name == family + suffix]

    buckets: defaultdict[float, float] = defaultdict(float)
    for labels, value in samples("export_latency_ms", "_bucket"):
        buckets[float(labels["le"])] += value
    p95 = p95_from_buckets(dict(buckets))
    rates = [value for _, value in samples("export_success_rate")]
    success = min(rates) if rates else 0.0
    running = max((v for _, v in samples("export_concurrent_running")), default=math.nan)
    queue = max((v for _, v in samples("export_queue_depth")), default=math.nan)
    exported = sum(v for _, v in samples("export_bytes", "_total"))
    completed = sum(
        v for labels, v in samples("export_requests", "_total") if labels["status"] == "completed"
    )
    # A new instance has written nothing because it has finished nothing: not a failure.
    bytes_ok = exported > 0 or completed == 0
    bytes_value = f"{exported:g}" + (" (no export completed yet)" if completed == 0 else "")
    return [
        Check("nine metrics present", f"{len(NINE) - len(missing)}/9"
              + (f" (missing {', '.join(missing)})" if missing else ""), "9/9", not missing),
        Check("p95 export_latency_ms", f"{p95:.1f}", f"< {P95_BOUND_MS:g}", p95 < P95_BOUND_MS),
        Check("export_success_rate (lowest format)", f"{success:.3f}", f">= {SUCCESS_BOUND}",
              success >= SUCCESS_BOUND),
        Check("export_concurrent_running", f"{running:g}", f"<= {RUNNING_BOUND}",
              running <= RUNNING_BOUND),
        Check("export_queue_depth", f"{queue:g}", f"<= {QUEUE_BOUND}", queue <= QUEUE_BOUND),
        Check("export_bytes_total", bytes_value, "> 0 once an export completed", bytes_ok),
    ]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="assert-export", description="Check a running service's /metrics against the contract."
    )
    parser.add_argument("--url", default="http://127.0.0.1:9400/metrics")
    args = parser.parse_args(argv)
    try:
        with urllib.request.urlopen(args.url, timeout=10) as response:  # noqa: S310 - an operator's URL
            text = response.read().decode()
    except OSError as exc:
        print(f"assert-export: cannot scrape {args.url}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    checks = evaluate(text)
    for check in checks:
        print(f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.value} (bound {check.bound})")
    return 0 if all(check.ok for check in checks) else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
