"""The alert rules load in Prometheus's own checker, pass their unit tests, and use real series."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.promql import exported_series, promtool, series_in

RULES_DIR = Path(__file__).parent.parent / "deploy" / "prometheus"
RULES = RULES_DIR / "alerts.yml"
NEEDED = {
    "ExportSuccessRateLow",
    "ExportLatencyHigh",
    "ExportBacklogHigh",
    "ExportQueueDepthHigh",
    "ExportsStalled",
    "ExportConsumerNotReady",
    "ExportConsumerDown",
}


def rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(RULES.read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def test_promtool_accepts_the_rules() -> None:
    done = promtool("check", "rules", RULES.name, cwd=RULES_DIR)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(NEEDED)} rules found" in done.stdout


def test_promtool_unit_tests_pass() -> None:
    """Each alert fires for a broken instance and stays quiet for a healthy one."""
    done = promtool("test", "rules", "alerts_test.yml", cwd=RULES_DIR)
    assert done.returncode == 0, done.stdout + done.stderr
    tested = set(re.findall(r"alertname: (\w+)", (RULES_DIR / "alerts_test.yml").read_text()))
    assert tested == NEEDED


def test_every_alert_has_a_summary_a_runbook_and_a_severity() -> None:
    found = {rule["alert"]: rule for rule in rules()}
    assert set(found) == NEEDED
    for name, rule in found.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"].strip(), name
        assert len(rule["annotations"]["runbook"]) > 40, name


def test_alerts_only_name_series_the_service_exports() -> None:
    """A renamed metric would silence an alert for ever; catch it here."""
    exported = exported_series()
    for rule in rules():
        named = series_in(rule["expr"])
        assert named or rule["expr"].startswith("up{"), rule["alert"]
        assert named <= exported, f"{rule['alert']} uses {named - exported}"
