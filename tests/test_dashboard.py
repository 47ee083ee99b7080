"""The Grafana dashboard shows what the issue asks, with queries Prometheus accepts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.promql import exported_series, promtool, series_in

DASHBOARD = Path(__file__).parent.parent / "deploy" / "grafana" / "export-consumer.json"
# What an operator must see, and the series that shows it.
SUBJECTS = {
    "throughput": "export_requests_total",
    "latency percentiles": "export_latency_ms_bucket",
    "failures by reason": "export_fail_total",
    "concurrency": "export_concurrent_running",
    "queue depth": "export_queue_depth",
    "memory": "export_memory_bytes",
}


def panels() -> list[dict[str, Any]]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    assert loaded["uid"] == "export-consumer"
    found: list[dict[str, Any]] = loaded["panels"]
    return found


def exprs() -> list[str]:
    return [target["expr"] for panel in panels() for target in panel["targets"]]


def test_every_subject_has_a_panel() -> None:
    for subject, series in SUBJECTS.items():
        showing = [p["title"] for p in panels() if any(series in t["expr"] for t in p["targets"])]
        assert showing, f"no panel shows {subject} ({series})"
    latency = [e for e in exprs() if "export_latency_ms_bucket" in e]
    assert {e.split(",")[0] for e in latency} >= {
        "histogram_quantile(0.5",
        "histogram_quantile(0.95",
        "histogram_quantile(0.99",
    }
    assert any("by (reason" in e for e in exprs() if "export_fail_total" in e)


def test_queries_name_only_exported_series() -> None:
    exported = exported_series()
    for expr in exprs():
        assert series_in(expr) <= exported, expr


def test_promtool_parses_every_query(tmp_path: Path) -> None:
    """Grafana's variables filled in, each query checked as a recording rule."""
    records = [
        {"record": f"dashboard:query_{i}", "expr": _filled(expr)} for i, expr in enumerate(exprs())
    ]
    rules = tmp_path / "dashboard_rules.yml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    done = promtool("check", "rules", rules.name, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_panels_do_not_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in panels():
        grid = panel["gridPos"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        taken |= cells


def _filled(expr: str) -> str:
    return expr.replace("$__rate_interval", "5m").replace("$instance", ".*")
