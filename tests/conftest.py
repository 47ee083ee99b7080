"""Shared fixtures: the real broker (existing cluster, testcontainers, or embedded Tansu)."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from consumer.broker import EmbeddedBroker, free_port


@dataclass(frozen=True)
class BrokerInfo:
    """How tests reach the broker."""

    bootstrap_servers: str
    idempotence: bool
    """Whether the idempotent producer works there (not on the embedded broker)."""
    kind: str


@functools.cache  # asked at collection and by the fixture: ping the engine once
def _docker_answers() -> bool:
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            client.ping()
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - any failure means no engine to use
        return False
    return True


def _broker_kind() -> str:
    """Which broker the session will use, in the developers' guide's order."""
    if os.environ.get("EXPORT_TEST_BOOTSTRAP"):
        return "existing"
    return "testcontainers" if _docker_answers() else "embedded"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that need Kafka's DeleteRecords cannot run on the embedded Tansu: deselect them
    there, by name in the report, rather than let them pass or skip without checking."""
    if _broker_kind() != "embedded":
        return
    unrunnable = [item for item in items if item.get_closest_marker("needs_delete_records")]
    if unrunnable:
        config.hook.pytest_deselected(items=unrunnable)
        items[:] = [item for item in items if item not in unrunnable]
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            names = ", ".join(item.name for item in unrunnable)
            reporter.write_line(f"deselected on the embedded broker (no DeleteRecords): {names}")


@pytest.fixture(scope="session")
def broker() -> Iterator[BrokerInfo]:
    """A Kafka-protocol broker over TCP, picked as the developers' guide says."""
    existing = os.environ.get("EXPORT_TEST_BOOTSTRAP")
    if existing:
        idempotence = os.environ.get("EXPORT_TEST_IDEMPOTENCE", "true").lower() == "true"
        yield BrokerInfo(existing, idempotence, "existing")
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            yield BrokerInfo(kafka.get_bootstrap_server(), True, "testcontainers")
        return
    with EmbeddedBroker(port=free_port()) as embedded:
        yield BrokerInfo(embedded.bootstrap_servers, False, "embedded")
