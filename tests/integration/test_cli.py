"""The commands as a user runs them: separate processes, real signals, real ports."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import orjson

from consumer.broker import free_port


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
    assert len(verdicts) == 5, proc.stdout
    assert any(v.startswith("invalid-request: failed (invalid_request)") for v in verdicts)
    assert any(v.startswith("report-pdf: completed 2000 records") for v in verdicts)
    assert len(list((tmp_path / "exports").glob("*.csv"))) == 3
    assert len(list((tmp_path / "exports").glob("*.pdf"))) == 1
    _assert_export_logs(proc.stderr, "seed-large-csv-")
    # Everything it started is gone.
    assert not _port_open(broker_port)
    assert not _port_open(metrics_port)


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
