"""The Apache Kafka test broker's own edges: missing tools, a node that will not start."""

from __future__ import annotations

import socket

import pytest

from tests.apache_kafka import (
    ApacheKafka,
    KafkaUnavailable,
    cache_dir,
    new_cluster_id,
    resolve_jars,
)


class TestResolveJars:
    def test_the_cache_follows_xdg_cache_home(self, tmp_path, monkeypatch):
        """XDG_CACHE_HOME moves the jar cache; the version names its folder."""
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
        assert cache_dir("9.9.9") == tmp_path / "export-consumer" / "kafka-9.9.9"

    def test_no_java_is_kafka_unavailable_and_leaves_nothing(self, tmp_path, monkeypatch):
        """Without java on PATH resolution says so, fast, and writes no cache folder."""
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
        with pytest.raises(KafkaUnavailable, match="no `java` on PATH"):
            resolve_jars("9.9.9")
        assert not (tmp_path / "cache").exists()


def test_cluster_ids_are_22_url_safe_characters():
    """A cluster id is what `kafka-storage random-uuid` prints: 22 URL-safe characters."""
    ids = {new_cluster_id() for _ in range(100)}
    assert len(ids) == 100
    for text in ids:
        assert len(text) == 22
        assert not text.startswith("-")
        assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@pytest.mark.needs_apache_kafka  # deselected by name where Java or the jars are missing
def test_a_node_that_exits_at_start_up_names_its_log_file(tmp_path):
    """A broker that cannot bind its port fails at once, naming its log file."""
    kafka = ApacheKafka(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", kafka.nodes[0].ports["PLAINTEXT"]))
        taken.listen()
        with pytest.raises(RuntimeError) as raised:
            kafka.start(timeout_s=60)
    assert str(raised.value).endswith(f"see {tmp_path / 'node-1' / 'kafka.log'}")
    assert "Address already in use" in (tmp_path / "node-1" / "kafka.log").read_text()
