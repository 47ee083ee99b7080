"""TLS for real (stunnel in front of the embedded broker) and refused SASL logins.

The service and `seed-export` run as the user runs them, as processes with EXPORT_*
variables; the only address they are given speaks TLS, so a plaintext client fails.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import orjson
import pytest

from consumer.broker import EmbeddedBroker, free_port
from consumer.settings import load_settings
from consumer.topics import ensure_topics, service_topics
from tests.integration.harness import scrape
from tests.integration.tls import Certificates, Stunnel, make_certificates

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def _env(**settings: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EXPORT_")}
    return {**clean, **{f"EXPORT_{k.upper()}": v for k, v in settings.items()}}


@pytest.fixture
def certificates(tmp_path: Path) -> Certificates:
    return make_certificates(tmp_path)


@pytest.fixture
def tls_broker(tmp_path: Path, certificates: Certificates) -> Iterator[str]:
    """The embedded broker behind stunnel; yields the TLS address it advertises."""
    port = free_port()
    with (
        Stunnel(tmp_path, certificates, f"127.0.0.1:{port}") as tunnel,
        EmbeddedBroker(port=port, advertised=tunnel.address),
    ):
        yield tunnel.address


def _start_up_failure(env: dict[str, str]) -> list[str]:
    """Run the service expecting it to refuse to start: its stderr lines."""
    done = subprocess.run(
        [sys.executable, "-m", "consumer.cli", "run"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    return done.stderr.strip().splitlines()


async def test_an_export_over_tls(tmp_path, certificates, tls_broker):
    """Service and seed-export trust the test CA: the export completes over TLS."""
    tls = {
        "bootstrap_servers": tls_broker,
        "security_protocol": "SSL",
        "ssl_cafile": str(certificates.ca),
    }
    settings = load_settings({**tls, "enable_idempotence": "false"})
    await ensure_topics(settings, service_topics(settings))
    metrics_port = free_port()
    service_env = _env(
        **tls,
        enable_idempotence="false",
        output_dir=str(tmp_path / "exports"),
        metrics_port=str(metrics_port),
        session_timeout_ms="3000",
        heartbeat_interval_ms="500",
    )
    service = subprocess.Popen(  # noqa: ASYNC220 - returns at once
        [sys.executable, "-m", "consumer.cli", "run"], env=service_env, stderr=subprocess.PIPE
    )
    try:
        await _wait_ready(service, metrics_port)
        seed = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "producer_tools.seed", "--records", "300", "--format", "csv"],
            env=_env(**tls), capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert seed.returncode == 0, seed.stdout + seed.stderr
    finally:
        service.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.to_thread(service.communicate, timeout=60)
    assert service.returncode == 0, stderr.decode()[-3000:]
    (output,) = (tmp_path / "exports").glob("*.csv")
    lines = output.read_bytes().split(b"\r\n")
    assert len(lines) == 1 + 300 + 1  # header, rows, the empty string after the last CRLF
    result = orjson.loads(seed.stdout)
    assert (result["status"], result["records"]) == ("completed", 300)
    assert result["output"]["uri"] == output.as_uri()


async def _wait_ready(service: subprocess.Popen[bytes], metrics_port: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert service.poll() is None, f"the service exited with {service.returncode}"
        try:
            status, _ = await asyncio.to_thread(scrape, metrics_port, "/readyz")
        except OSError:
            status = 0
        if status == 200:
            return
        assert time.monotonic() < deadline, "the service did not become ready over TLS"
        await asyncio.sleep(0.1)


def test_an_untrusted_ca_stops_start_up_with_one_clear_line(certificates, tls_broker):
    """Trusting only another CA: exit 2 and one line naming the broker and the CA file."""
    lines = _start_up_failure(
        _env(
            bootstrap_servers=tls_broker,
            security_protocol="SSL",
            ssl_cafile=str(certificates.other_ca),
            metrics_port="0",
        )
    )
    expected = (
        f"export-consumer: TLS: the broker at {tls_broker} sent a certificate that is not "
        f"trusted (EXPORT_SSL_CAFILE={certificates.other_ca}): unable to get local issuer "
        "certificate"
    )
    assert lines == [expected]


def test_no_ca_given_names_the_setting_to_set(tls_broker):
    """With the system's CAs only, the line says which variable to set."""
    lines = _start_up_failure(
        _env(bootstrap_servers=tls_broker, security_protocol="SSL", metrics_port="0")
    )
    assert len(lines) == 1
    assert "set EXPORT_SSL_CAFILE to the broker's CA" in lines[0]


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"])
def test_refused_sasl_credentials_stop_start_up_with_one_clear_line(mechanism):
    """A broker that requires SASL refuses an unknown user: exit 2, one line, no password."""
    port = free_port()
    with EmbeddedBroker(port=port, authentication=True):
        lines = _start_up_failure(
            _env(
                bootstrap_servers=f"127.0.0.1:{port}",
                security_protocol="SASL_PLAINTEXT",
                sasl_mechanism=mechanism,
                sasl_plain_username="alice",
                sasl_plain_password="not-her-password",
                metrics_port="0",
            )
        )
    assert len(lines) == 1
    assert lines[0].startswith(
        f"export-consumer: SASL: the broker at 127.0.0.1:{port} refused {mechanism} "
        "authentication as 'alice' (EXPORT_SASL_PLAIN_USERNAME, EXPORT_SASL_PLAIN_PASSWORD)"
    )
    assert "not-her-password" not in lines[0]
