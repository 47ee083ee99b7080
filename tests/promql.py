"""Helpers for the tests of what Prometheus and Grafana read: series names and promtool."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import TYPE_CHECKING

import pytest

from consumer.metrics import ExportMetrics

if TYPE_CHECKING:
    from pathlib import Path


def exported_series() -> set[str]:
    """Every series name the service can put on /metrics, histogram parts included."""
    names: set[str] = set()
    # From the families, not the samples: a labelled series has no sample until first used.
    parts = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}
    for family in ExportMetrics().registry.collect():
        names.update(family.name + part for part in parts[family.type])
    return names


def series_in(expr: str) -> set[str]:
    """The export_* series an expression names (label values and ranges removed first)."""
    bare = re.sub(r'"[^"]*"|\[[^\]]*\]', "", expr)
    return {word for word in re.findall(r"[a-z_]+", bare) if word.startswith("export_")}


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool not found: install Debian's `prometheus` package (.ci/run does)")
    return subprocess.run(
        [tool, *args], capture_output=True, text=True, timeout=60, check=False, cwd=cwd
    )
