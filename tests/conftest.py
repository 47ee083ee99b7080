"""Shared fixtures: the real broker (an existing cluster, Apache Kafka, or the embedded Tansu).

`EXPORT_TEST_BOOTSTRAP=host:port` uses a cluster that is already running. Otherwise
`EXPORT_TEST_BROKER` picks: `kafka` (Apache Kafka from its jars; an error if Java or the
jars are missing), `tansu` (the embedded broker), or `auto`, the default: Apache Kafka
when Java is there and the jars are cached or Maven can resolve them, else Tansu, said
once in the report header.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from consumer.broker import EmbeddedBroker, free_port
from consumer.lanes import LanePool
from tests.apache_kafka import KAFKA_VERSION, ApacheKafka, KafkaUnavailable, resolve_jars

CHOICES = ("auto", "kafka", "tansu")


@dataclass(frozen=True)
class BrokerInfo:
    """How tests reach the broker."""

    bootstrap_servers: str
    idempotence: bool
    """Whether the idempotent producer works there (not on the embedded broker)."""
    kind: str
    """`existing`, `kafka` (Apache Kafka) or `embedded` (Tansu)."""


@dataclass(frozen=True)
class Choice:
    kind: str
    """`existing`, `kafka` or `embedded`."""
    why: str
    """What the report header says about it."""


@functools.cache  # asked at collection, in the header and by the fixtures: decide once
def broker_choice() -> Choice:
    """Which broker the session uses, in the README's order."""
    existing = os.environ.get("EXPORT_TEST_BOOTSTRAP")
    if existing:
        return Choice("existing", f"broker: the existing cluster at {existing}")
    wanted = os.environ.get("EXPORT_TEST_BROKER", "auto").strip().lower() or "auto"
    if wanted not in CHOICES:
        raise pytest.UsageError(f"EXPORT_TEST_BROKER={wanted}: use one of {', '.join(CHOICES)}")
    if wanted == "tansu":
        return Choice("embedded", "broker: the embedded Tansu (EXPORT_TEST_BROKER=tansu)")
    try:
        lib = resolve_jars()
    except KafkaUnavailable as exc:
        if wanted == "kafka":
            raise pytest.UsageError(f"EXPORT_TEST_BROKER=kafka: {exc}") from exc
        return Choice("embedded", f"broker: the embedded Tansu, as Apache Kafka is not: {exc}")
    return Choice("kafka", f"broker: Apache Kafka {KAFKA_VERSION} (jars in {lib})")


def pytest_report_header(config: pytest.Config) -> str:
    return broker_choice().why


def _say_once_when_quiet(config: pytest.Config) -> None:
    """`-q` hides the header: a fallback to Tansu is still said, in one line."""
    choice = broker_choice()
    if config.get_verbosity() < 0 and choice.kind == "embedded" and "Apache Kafka" in choice.why:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(choice.why)


@functools.cache
def kafka_at_hand() -> bool:
    """Whether Apache Kafka can run here, whichever broker the session uses."""
    if broker_choice().kind == "kafka":
        return True
    if broker_choice().kind == "embedded":
        return False  # by choice, or because it cannot
    try:
        resolve_jars()
    except KafkaUnavailable:
        return False
    return True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that need what only Apache Kafka has (DeleteRecords, its own TLS and SASL
    listeners) cannot run on the embedded Tansu: deselect them there, by name in the
    report, rather than let them pass or skip without checking."""
    _say_once_when_quiet(config)
    markers = []
    if broker_choice().kind == "embedded":
        markers.extend(["needs_delete_records", "needs_transactions"])
    if not kafka_at_hand():
        markers.append("needs_apache_kafka")
    unrunnable = [item for item in items if any(item.get_closest_marker(m) for m in markers)]
    if unrunnable:
        config.hook.pytest_deselected(items=unrunnable)
        items[:] = [item for item in items if item not in unrunnable]
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            names = ", ".join(sorted(item.name for item in unrunnable))
            reporter.write_line(f"deselected, as they need Apache Kafka: {names}")


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerInfo]:
    """A Kafka-protocol broker over TCP for the whole session; each test makes its topics."""
    choice = broker_choice()
    if choice.kind == "existing":
        existing = os.environ["EXPORT_TEST_BOOTSTRAP"]
        idempotence = os.environ.get("EXPORT_TEST_IDEMPOTENCE", "true").lower() == "true"
        yield BrokerInfo(existing, idempotence, "existing")
    elif choice.kind == "kafka":
        with ApacheKafka(tmp_path_factory.mktemp("kafka")) as kafka:
            yield BrokerInfo(kafka.bootstrap_servers, True, "kafka")
    else:
        with EmbeddedBroker(port=free_port()) as embedded:
            yield BrokerInfo(embedded.bootstrap_servers, False, "embedded")


class RestartableBroker(Protocol):
    """A broker a test owns and may stop and start again on the same address."""

    @property
    def bootstrap_servers(self) -> str: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class OwnBroker:
    broker: RestartableBroker
    idempotence: bool
    durable: bool
    """Whether topics and records survive `stop()`/`start()` (not on the memory-only Tansu)."""

    @property
    def bootstrap_servers(self) -> str:
        return self.broker.bootstrap_servers


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[OwnBroker]:
    """A broker of the test's own, started, for outages: Apache Kafka when it can run here
    and the session is not on Tansu, else the embedded Tansu."""
    own: OwnBroker
    if kafka_at_hand():
        own = OwnBroker(ApacheKafka(tmp_path / "kafka"), idempotence=True, durable=True)
    else:
        own = OwnBroker(EmbeddedBroker(port=free_port()), idempotence=False, durable=False)
    own.broker.start()
    try:
        yield own
    finally:
        own.broker.stop()


@pytest.fixture(scope="module")
def pool() -> Iterator[LanePool]:
    """Lanes for one export on a machine of three cores: two idle ones to spread over."""
    lanes = LanePool(size=5, cores=3, load=lambda: 1)
    yield lanes
    lanes.stop()
