"""TLS and SASL for real, on Apache Kafka's own listeners, and refused logins.

One Kafka for the module with a listener per security protocol: SSL and SASL_SSL with a
PEM keystore signed by a test CA (openssl), SASL_PLAINTEXT and SASL_SSL offering
SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN, and a user made when its log directory was
formatted. The service and `seed-export` run as the user runs them, as processes with
EXPORT_* variables, given only the secure listener's address. Tansu has no TLS listener
of its own and no users, so `needs_apache_kafka` deselects these tests there.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson
import pytest

from consumer.broker import free_port
from consumer.settings import load_settings
from consumer.topics import RECORDS_TOPIC, ensure_topics
from tests.apache_kafka import ApacheKafka, KeyStore, User
from tests.integration.harness import scrape
from tests.integration.tls import Certificates, make_certificates

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.needs_apache_kafka

USER = User("alice", "alice-secret")


@dataclass(frozen=True)
class SecureKafka:
    kafka: ApacheKafka
    certificates: Certificates

    def address(self, protocol: str) -> str:
        return self.kafka.address(protocol)


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    """Apache Kafka with SASL_PLAINTEXT, SSL and SASL_SSL listeners and the user alice."""
    folder = tmp_path_factory.mktemp("secure-kafka")
    certificates = make_certificates(folder)
    # The unencrypted PKCS#8 key, then the chain: the server certificate alone, so a client
    # trusting another CA hears "unable to get local issuer certificate".
    keystore = folder / "server-keystore.pem"
    keystore.write_bytes(
        certificates.server_key.read_bytes() + certificates.server_cert.read_bytes()
    )
    with ApacheKafka(
        folder / "kafka",
        protocols=("SASL_PLAINTEXT", "SSL", "SASL_SSL"),
        users=[USER],
        keystore=KeyStore(keystore),
    ) as kafka:
        yield SecureKafka(kafka, certificates)


def _env(**settings: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EXPORT_")}
    return {**clean, **{f"EXPORT_{k.upper()}": v for k, v in settings.items()}}


def _start_up_failure(env: dict[str, str]) -> list[str]:
    """Run the service expecting it to refuse to start: its stderr lines."""
    done = subprocess.run(
        [sys.executable, "-m", "consumer.cli", "run"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    return done.stderr.strip().splitlines()


def _connection(secure: SecureKafka, protocol: str, mechanism: str | None) -> dict[str, str]:
    """The client settings for one listener, as the user would set them."""
    settings = {"bootstrap_servers": secure.address(protocol), "security_protocol": protocol}
    if protocol in {"SSL", "SASL_SSL"}:
        settings["ssl_cafile"] = str(secure.certificates.ca)
    if mechanism is not None:
        settings["sasl_mechanism"] = mechanism
        settings["sasl_plain_username"] = USER.name
        settings["sasl_plain_password"] = USER.password
    return settings


@pytest.mark.parametrize(
    ("protocol", "mechanism"),
    [
        ("SSL", None),
        ("SASL_SSL", "SCRAM-SHA-512"),
        ("SASL_PLAINTEXT", "SCRAM-SHA-256"),
        ("SASL_PLAINTEXT", "SCRAM-SHA-512"),
    ],
)
async def test_an_export_over_a_secure_listener(tmp_path, secure_kafka, protocol, mechanism):
    """Service and seed-export log in and trust the test CA: the export completes there."""
    tag = secrets.token_hex(4)
    connection = {
        **_connection(secure_kafka, protocol, mechanism),
        "request_topic": f"requests-{tag}",
        "result_topic": f"results-{tag}",
        "dlq_topic": f"dlq-{tag}",
        "group_id": f"group-{tag}",
    }
    settings = load_settings(connection)
    topics = {settings.request_topic: 2, settings.result_topic: 1, settings.dlq_topic: 1}
    await ensure_topics(settings, {**topics, RECORDS_TOPIC: 1})
    metrics_port = free_port()
    service_env = _env(
        **connection,
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
            env=_env(**connection), capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert seed.returncode == 0, seed.stdout + seed.stderr
    finally:
        stderr = await asyncio.to_thread(_stop, service)
    assert service.returncode == 0, stderr.decode()[-3000:]
    (output,) = (tmp_path / "exports").glob("*.csv")
    lines = output.read_bytes().split(b"\r\n")
    assert len(lines) == 1 + 300 + 1  # header, rows, the empty string after the last CRLF
    result = orjson.loads(seed.stdout)
    assert (result["status"], result["records"]) == ("completed", 300)
    assert result["output"]["uri"] == output.as_uri()


def _stop(service: subprocess.Popen[bytes]) -> bytes:
    """SIGTERM and the service's stderr; one that does not exit in time prints its threads'
    stacks (SIGUSR1) and is killed, so it neither hangs the suite nor outlives the test."""
    service.send_signal(signal.SIGTERM)
    try:
        return service.communicate(timeout=60)[1]
    except subprocess.TimeoutExpired:
        service.send_signal(signal.SIGUSR1)
        time.sleep(2)
        service.kill()
        stderr = service.communicate()[1]
        pytest.fail(f"no exit within 60 s of SIGTERM; its stacks:\n{stderr.decode()[-6000:]}")


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
        assert time.monotonic() < deadline, "the service did not become ready"
        await asyncio.sleep(0.1)


def test_an_untrusted_ca_stops_start_up_with_one_clear_line(secure_kafka):
    """Trusting only another CA: exit 2 and one line naming the broker and the CA file."""
    address = secure_kafka.address("SSL")
    other_ca = secure_kafka.certificates.other_ca
    lines = _start_up_failure(
        _env(
            bootstrap_servers=address,
            security_protocol="SSL",
            ssl_cafile=str(other_ca),
            metrics_port="0",
        )
    )
    expected = (
        f"export-consumer: TLS: the broker at {address} sent a certificate that is not "
        f"trusted (EXPORT_SSL_CAFILE={other_ca}): unable to get local issuer certificate"
    )
    assert lines == [expected]


def test_no_ca_given_names_the_setting_to_set(secure_kafka):
    """With the system's CAs only, the line says which variable to set."""
    lines = _start_up_failure(
        _env(
            bootstrap_servers=secure_kafka.address("SSL"),
            security_protocol="SSL",
            metrics_port="0",
        )
    )
    assert len(lines) == 1
    assert "set EXPORT_SSL_CAFILE to the broker's CA" in lines[0]


@pytest.mark.parametrize(
    ("protocol", "mechanism"),
    [
        ("SASL_PLAINTEXT", "SCRAM-SHA-256"),
        ("SASL_PLAINTEXT", "SCRAM-SHA-512"),
        ("SASL_SSL", "SCRAM-SHA-256"),
        # PLAIN over TLS only: in the clear aiokafka logs a warning first, rightly.
        ("SASL_SSL", "PLAIN"),
    ],
)
def test_a_wrong_password_stops_start_up_with_one_clear_line(secure_kafka, protocol, mechanism):
    """The broker refuses a known user's wrong password: exit 2, one line, no password."""
    connection = _connection(secure_kafka, protocol, mechanism)
    address = connection["bootstrap_servers"]
    lines = _start_up_failure(
        _env(**{**connection, "sasl_plain_password": "not-her-password"}, metrics_port="0")
    )
    assert len(lines) == 1
    assert lines[0].startswith(
        f"export-consumer: SASL: the broker at {address} refused {mechanism} "
        "authentication as 'alice' (EXPORT_SASL_PLAIN_USERNAME, EXPORT_SASL_PLAIN_PASSWORD)"
    ), lines[0]
    assert "not-her-password" not in lines[0]
