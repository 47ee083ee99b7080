"""Drives a real service in the test's event loop and talks to it over the broker."""

from __future__ import annotations

import asyncio
import secrets
import time
import urllib.request
from collections.abc import Collection, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from consumer.service import ExportService
from consumer.settings import Settings, load_settings
from consumer.topics import ensure_topics

RESULT_WAIT_S = 30.0


class Harness:
    """One test's world: its own topics, group and output directory on the shared broker."""

    def __init__(
        self,
        bootstrap: str,
        idempotence: bool,
        tmp_path: Path,
        *,
        replication: int | Sequence[int] = 1,
    ) -> None:
        tag = secrets.token_hex(4)
        self.root = tmp_path
        self.replication = replication
        """How the harness's topics are replicated (see `ensure_topics`)."""
        self.records_topic = f"records-{tag}"
        self.base = {
            "bootstrap_servers": bootstrap,
            "group_id": f"group-{tag}",
            "request_topic": f"requests-{tag}",
            "result_topic": f"results-{tag}",
            "dlq_topic": f"dlq-{tag}",
            "output_dir": str(tmp_path / "exports"),
            "metrics_host": "127.0.0.1",
            "metrics_port": "0",
            "enable_idempotence": str(idempotence).lower(),
            "session_timeout_ms": "3000",
            "heartbeat_interval_ms": "500",
            "timeout_s": "20",
        }
        self.settings = self.make_settings()
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        self.results = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self._seen: list[dict[str, Any]] = []

    @property
    def output_dir(self) -> Path:
        return Path(self.base["output_dir"])

    def make_settings(self, **overrides: Any) -> Settings:
        return load_settings({**self.base, **{k: str(v) for k, v in overrides.items()}})

    async def start(self) -> None:
        await self._create_topics()
        await self.producer.start()
        await self.results.start()
        await self._read_results_from_start()

    async def _create_topics(self) -> None:
        s = self.settings
        topics = {s.request_topic: 2, s.result_topic: 1, s.dlq_topic: 1, self.records_topic: 1}
        await ensure_topics(s, topics, replication=self.replication)

    async def start_again(self) -> None:
        """After a memory-only broker restarts: the topics again, results read from 0."""
        await self._create_topics()
        await self._read_results_from_start()

    async def _read_results_from_start(self) -> None:
        """Every partition of the result topic from offset 0: after a restart the service
        may publish before the topics are made again, and the broker then creates the
        result topic itself, with whatever partition count it chooses."""
        await self.results.topics()  # fresh metadata
        topic = self.settings.result_topic
        partitions = self.results.partitions_for_topic(topic) or {0}
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        self.results.assign(tps)
        for tp in tps:
            self.results.seek(tp, 0)

    async def stop(self) -> None:
        await self.producer.stop()
        await self.results.stop()

    @asynccontextmanager
    async def service(self, **overrides: Any):
        """A running service; waits until it has joined the group."""
        service = ExportService(self.make_settings(**overrides))
        task = asyncio.create_task(service.run())
        try:
            deadline = time.monotonic() + 30
            while service.readiness.reason is not None:
                if task.done():
                    task.result()
                assert time.monotonic() < deadline, "service did not join the group"
                await asyncio.sleep(0.05)
            yield service
        finally:
            service.request_stop()
            await asyncio.wait_for(task, 60)

    async def write_batches(
        self, batches: list[Any], *, key: str | None = None, topic: str | None = None
    ) -> tuple[int, int]:
        """Send message values (objects are JSON-encoded); the offset range they took."""
        offsets = []
        for value in batches:
            raw = value if isinstance(value, bytes) else orjson.dumps(value)
            md = await self.producer.send_and_wait(
                topic or self.records_topic,
                raw,
                key=key.encode() if key is not None else None,
                partition=0,
            )
            offsets.append(md.offset)
        return (min(offsets), max(offsets) + 1) if offsets else (0, 0)

    def request(self, export_id: str, start: int, end: int, **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "export_id": export_id,
            "format": "csv",
            "columns": ["id", "name", "amount"],
            "source": {
                "topic": self.records_topic,
                "partition": 0,
                "start_offset": start,
                "end_offset": end,
            },
        }
        body.update(fields)
        return body

    async def send_request(
        self, body: dict[str, Any] | bytes, *, key: bytes | None = None, topic: str | None = None
    ) -> int:
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        if key is None and isinstance(body, dict) and isinstance(body.get("export_id"), str):
            key = body["export_id"].encode()
        md = await self.producer.send_and_wait(topic or self.settings.request_topic, raw, key=key)
        return int(md.offset)

    async def result(
        self, export_id: str, *, nth: int = 1, wait_s: float = RESULT_WAIT_S
    ) -> dict[str, Any]:
        """The nth outcome (completed or failed) published for an export."""
        deadline = time.monotonic() + wait_s
        while True:
            found = [
                r
                for r in self._seen
                if r["export_id"] == export_id and r["status"] in {"completed", "failed"}
            ]
            if len(found) >= nth:
                return found[nth - 1]
            assert time.monotonic() < deadline, f"no result #{nth} for {export_id}"
            fetched = await self.results.getmany(timeout_ms=200)
            for messages in fetched.values():
                self._seen.extend(orjson.loads(m.value) for m in messages)

    def events(self, export_id: str) -> list[dict[str, Any]]:
        """Every event seen so far for an export, progress included, in topic order."""
        return [r for r in self._seen if r["export_id"] == export_id]

    async def dead_letters(
        self, count: int, wait_s: float = RESULT_WAIT_S, *, covering: Collection[bytes] = ()
    ) -> list[Any]:
        """The dead-letter topic from its start: at least `count` messages, and on until
        every value in `covering` is among them (a redelivery may repeat one, so a count
        alone can stop before the last)."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers, enable_auto_commit=False
        )
        await consumer.start()
        try:
            tp = TopicPartition(self.settings.dlq_topic, 0)
            consumer.assign([tp])
            consumer.seek(tp, 0)
            got: list[Any] = []
            missing = set(covering)
            deadline = time.monotonic() + wait_s
            while len(got) < count or missing:
                assert time.monotonic() < deadline, (
                    f"{len(got)} dead letters; never seen: {sorted(missing)[:5]}"
                )
                fetched = await consumer.getmany(tp, timeout_ms=200)
                got.extend(fetched.get(tp, []))
                missing.difference_update(m.value for m in fetched.get(tp, []))
            return got
        finally:
            await consumer.stop()

    async def committed(self, partition: int) -> int | None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers,
            group_id=self.settings.group_id,
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            tp = TopicPartition(self.settings.request_topic, partition)
            committed: int | None = await consumer.committed(tp)
            return committed
        finally:
            await consumer.stop()


def scrape(port: int, path: str = "/metrics") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def metric_value(text: str, name: str, **labels: str) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def output_of(result: dict[str, Any]) -> Path:
    """The output file a completed result points at."""
    return Path(result["output"]["uri"].removeprefix("file://"))
