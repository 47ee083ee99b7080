"""The commands as a user runs them: separate processes, real signals, real ports."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson

from consumer.broker import free_port
from consumer.topics import ensure_topics
from tests.terminal import at_a_terminal


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _dev_command(tmp_path, broker_port: int, metrics_port: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "consumer.cli", "dev",
        "--bootstrap-servers", f"127.0.0.1:{broker_port}",
        "--metrics-port", str(metrics_port),
        "--output-dir", str(tmp_path / "exports"),
        "--session-timeout-ms", "3000", "--heartbeat-interval-ms", "500",
        *extra,
    ]  # fmt: skip


def test_dev_demo_runs_the_batch_and_exits_zero(tmp_path):
    """`export-consumer dev --demo` (the README's first command) runs the scenarios."""
    broker_port, metrics_port = free_port(), free_port()
    proc = subprocess.run(
        _dev_command(tmp_path, broker_port, metrics_port, "--demo"),
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"export-consumer dev: broker 127.0.0.1:{broker_port}")
    assert f"metrics http://127.0.0.1:{metrics_port}/metrics" in lines[0]
    verdicts = [line for line in lines if line.endswith("[ok]")]
    assert len(verdicts) == 9, proc.stdout
    assert any(v.startswith("invalid-request: failed (invalid_request)") for v in verdicts)
    assert any(v.startswith("report-pdf: completed 2000 records") for v in verdicts)
    assert any(v.startswith("window-csv: completed 6000 records") for v in verdicts)
    assert any(v.startswith("table-parquet: completed 100000 records") for v in verdicts)
    outputs = tmp_path / "exports"
    assert len(list(outputs.glob("*.csv"))) == 4
    for ext in ("pdf", "xlsx", "parquet", "jsonl.gz"):
        assert len(list(outputs.glob(f"*.{ext}"))) == 1, ext
    _assert_export_logs(proc.stderr, "seed-large-csv-")
    # Everything it started is gone.
    assert not _port_open(broker_port)
    assert not _port_open(metrics_port)


def _shape(text: str) -> str:
    """A transcript with what differs between runs and machines made generic."""
    text = re.sub(r"(outputs|logs) /\S+?(,|$)", r"\1 PATH\2", text, flags=re.MULTILINE)
    text = re.sub(r"file:///\S+/", "file:///PATH/", text)
    text = re.sub(r"-[0-9a-f]{8}\.", "-ID.", text)
    return re.sub(r"\d+(\.\d+)?", "N", text)


def _readme_demo_block() -> str:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    block = readme.split("<!-- demo output, checked by tests/integration/test_cli.py -->")[1]
    return block.split("```", 2)[1].removeprefix("\n").rstrip()


def test_dev_demo_at_a_terminal_reads_as_the_readme_shows(tmp_path):
    """At a terminal, the README's first command (`scripts/demo`: `dev --demo` once set up)
    shows the banner and one line per scenario (no JSON log lines: those go to the file the
    banner names), and that is the README's sample."""
    broker_port, metrics_port = free_port(), free_port()
    status, shown = at_a_terminal(
        ["bash", str(Path(__file__).parents[2] / "scripts" / "demo"),
         "--bootstrap-servers", f"127.0.0.1:{broker_port}", "--metrics-port", str(metrics_port),
         "--output-dir", str(tmp_path / "exports")],
        cwd=tmp_path, env={"EXPORT_SKIP_SETUP": "1"},  # the suite runs set up already
    )  # fmt: skip
    assert status == 0, shown
    assert '{"ts"' not in shown
    banner = shown.splitlines()[0]
    log_file = tmp_path / "export-consumer-dev.log"
    assert banner.endswith(f", logs {log_file}"), banner
    assert f"outputs {tmp_path / 'exports'}" in banner
    _assert_export_logs(log_file.read_text(), "seed-large-csv-")
    assert _shape(shown) == _shape(_readme_demo_block())


def _assert_export_logs(stderr: str, id_prefix: str) -> None:
    """The service's stderr is JSON lines; grepping an export's id tells its whole life."""
    # seed-export's progress bars share this stderr and end in \r, not a new line.
    lines = [line[line.index('{"ts"') :] for line in stderr.splitlines() if '{"ts"' in line]
    entries = [orjson.loads(line) for line in lines]
    assert entries, stderr[-2000:]
    mine = [e for e in entries if str(e.get("export_id", "")).startswith(id_prefix)]
    events = [e["event"] for e in mine]
    assert events[0] == "export_received", events
    assert events[-1] == "export_finished", events
    assert "export_started" in events
    started = next(e for e in mine if e["event"] == "export_started")
    finished = mine[-1]
    assert started["waited_ms"] >= 0
    assert finished["status"] == "completed"
    assert finished["records"] == 100_000
    assert finished["duration_ms"] > 0
    assert all({"ts", "level", "message", "event"} <= e.keys() for e in mine)
    # Lines about exports never lack the id: every export event names one.
    about_exports = [e for e in entries if str(e.get("event", "")).startswith("export_")]
    assert all("export_id" in e for e in about_exports)


def test_dev_stops_cleanly_on_ctrl_c(tmp_path):
    """SIGINT stops the service and the embedded broker; exit 0, nothing left listening."""
    broker_port, metrics_port = free_port(), free_port()
    proc = subprocess.Popen(
        _dev_command(tmp_path, broker_port, metrics_port),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert "Ctrl-C stops" in banner
        assert _port_open(broker_port)
        deadline = time.monotonic() + 30
        while not _readyz_ok(metrics_port):
            assert time.monotonic() < deadline, "dev never became ready"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert not _port_open(broker_port)
    assert not _port_open(metrics_port)


def _readyz_ok(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


async def test_seed_export_prints_the_result(harness):
    """`seed-export --records N` writes batches, requests the export and prints the result."""
    env = {
        **os.environ,
        "EXPORT_BOOTSTRAP_SERVERS": harness.settings.bootstrap_servers,
        "EXPORT_REQUEST_TOPIC": harness.settings.request_topic,
        "EXPORT_RESULT_TOPIC": harness.settings.result_topic,
    }
    async with harness.service():
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "producer_tools.seed", "--records", "2500",
            "--records-topic", harness.records_topic, "--export-id", "seeded", "--quiet",
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    result = orjson.loads(out)
    assert result["status"] == "completed"
    assert result["records"] == 2500
    text = (harness.output_dir / "seeded.csv").read_bytes().decode("utf-8")
    assert text.startswith("id,customer,country,amount,currency,created_at,paid,note\r\n")
    assert text.count("\r\n") >= 2501


async def test_seed_export_window_spreads_batches_and_requests_the_window(harness):
    """`seed-export --window 24h --partitions 3` stamps its batches across the last day on
    three partitions and exports them by a time window: every record, in id order (the
    batches' timestamps rise with their ids), read from all three partitions."""
    topic = f"{harness.records_topic}-spread"
    await ensure_topics(harness.settings, {topic: 3})
    env = {
        **os.environ,
        "EXPORT_BOOTSTRAP_SERVERS": harness.settings.bootstrap_servers,
        "EXPORT_REQUEST_TOPIC": harness.settings.request_topic,
        "EXPORT_RESULT_TOPIC": harness.settings.result_topic,
    }
    async with harness.service():
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "producer_tools.seed", "--records", "5500", "--window", "24h",
            "--partitions", "3", "--records-topic", topic, "--export-id", "spread", "--quiet",
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    result = orjson.loads(out)
    assert result["records"] == 5500
    assert "since" in result["source"]
    assert [r["partition"] for r in result["source"]["ranges"]] == [0, 1, 2]
    text = (harness.output_dir / "spread.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))[1:]
    assert [int(row[0]) for row in rows] == list(range(1, 5501))
