"""scripts/setup, the first step of the README's two commands, where it cannot install."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_without_apt_it_stops_at_once_naming_the_packages(tmp_path):
    """With no apt-get (and none of the tools) on PATH, setup exits 2 with one line naming
    every package to install, before it creates or installs anything."""
    proc = subprocess.run(
        ["/bin/bash", str(ROOT / "scripts" / "setup"), "test"],
        env={"PATH": str(tmp_path)}, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    packages = (
        "gcc", "poppler-utils", "prometheus", "openssl", "openjdk-17-jre-headless", "maven",
        "kcat", "libreoffice-calc-nogui",
    )  # fmt: skip
    for package in packages:
        assert f" {package}" in lines[0]
    assert lines[0].startswith("scripts/setup: install these system packages first")
