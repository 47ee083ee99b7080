"""Every benchmark runs, at a tiny size, on the session's broker: they cannot rot.

The numbers mean nothing at this size and nothing is asserted about them; what is checked
is that each command finishes and prints its summary line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import BrokerInfo

RUN_TIMEOUT_S = 300

# (command line after `python -m`, a phrase of its summary)
BENCHMARKS = [
    (["bench.csv", "--records", "400", "--rounds", "1"], "service/peer"),
    (["bench.csv", "--concurrent", "2", "--records", "300"], "CPU per record"),
    (["bench.pdf", "--records", "200", "--rounds", "1"], "service/peer"),
    (["bench.store", "--records", "400", "--rounds", "1"], "bucket/file"),
    (["bench.decode", "--records", "400", "--rounds", "1"], "records"),
    (["bench.load", "--responsiveness", "--records", "200"], "event-loop lag"),
    (["bench.load", "--mixed", "--records", "2000"], "at once"),
    (["bench.s3_clients", "--mib", "8", "--rounds", "1"], "MiB/s"),
    (["bench.transport", "--records", "400", "--rounds", "1"], "faster bare consumer"),
    (["bench.connect", "--records", "400", "--rounds", "1"], "service/Connect"),
    (["bench.window", "--records", "4000", "--rounds", "1"], "window/range"),
    (["bench.formats", "--records", "400", "--rounds", "1"], "csv.gz/csv"),
    (["bench.nested", "--records", "400", "--rounds", "1"], "nested/flat"),
    (["bench.gzip_levels", "--records", "2000"], "zlib 6's speed"),
]


@pytest.mark.parametrize(
    ("command", "summary"), BENCHMARKS, ids=[" ".join(command) for command, _ in BENCHMARKS]
)
def test_benchmark_runs_at_a_tiny_size(
    command: list[str], summary: str, broker: BrokerInfo, tmp_path: Path
) -> None:
    """The benchmark finishes on the session's broker and prints its summary."""
    env = {
        **os.environ,
        "EXPORT_BENCH_BOOTSTRAP": broker.bootstrap_servers,
        "EXPORT_BENCH_BROKER": "kafka" if broker.idempotence else "tansu",
    }
    done = subprocess.run(
        [sys.executable, "-m", *command],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert summary in done.stdout, done.stdout[-2000:]


def test_scaling_writes_its_table_and_plot(broker: BrokerInfo, tmp_path: Path) -> None:
    """The scaling benchmark prints its Markdown table and writes the plot."""
    plot = tmp_path / "scaling.png"
    env = {**os.environ, "EXPORT_BENCH_BOOTSTRAP": broker.bootstrap_servers}
    env["EXPORT_BENCH_BROKER"] = "kafka" if broker.idempotence else "tansu"
    command = ["bench.scaling", "--out", str(plot), "--csv", "100,300", "--pdf", "50"]
    done = subprocess.run(
        [sys.executable, "-m", *command],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "| csv | 300 |" in done.stdout
    assert plot.read_bytes().startswith(b"\x89PNG")
