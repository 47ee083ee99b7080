"""Kafka helpers shared by the tools: settings, producing batches, waiting for results."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from consumer.settings import Settings, env_name, load_settings
from consumer.topics import topic_partitions

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


def tool_settings(environ: Mapping[str, str], **flags: str) -> Settings:
    """The service's settings as the tools read them.

    Tools only need acks=all: a duplicate request or batch is harmless (requests are
    idempotent by export_id), so the idempotent producer stays off unless asked for.
    """
    given = {k: v for k, v in flags.items() if v is not None}
    if env_name("enable_idempotence") not in environ:
        given.setdefault("enable_idempotence", "false")
    return load_settings(given)


def producer(settings: Settings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **settings.kafka_client_options(),
        acks="all",
        enable_idempotence=settings.enable_idempotence,
        linger_ms=5,
        max_request_size=16 * 1024 * 1024,
    )


class ResultWaiter:
    """Reads the result topic from its current end, for the results of given export ids.

    Start it before sending the request so no result can be missed.
    """

    def __init__(self, settings: Settings) -> None:
        self._topic = settings.result_topic
        self._consumer = AIOKafkaConsumer(
            **settings.kafka_client_options(),
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
        )
        self._seen: dict[str, dict[str, Any]] = {}

    async def start(self) -> None:
        await self._consumer.start()
        partitions = await topic_partitions(self._consumer, self._topic)
        if partitions is None:
            await self._consumer.stop()
            raise RuntimeError(
                f"result topic {self._topic!r} does not exist: is the service running?"
            )
        tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_end(*tps)
        for tp in tps:
            # Resolve the end offsets now: later results must not be skipped.
            await self._consumer.position(tp)

    async def stop(self) -> None:
        await self._consumer.stop()

    async def wait(
        self,
        export_id: str,
        timeout_s: float,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """The first `completed` or `failed` result for `export_id`."""
        deadline = time.monotonic() + timeout_s
        while export_id not in self._seen:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no result for {export_id} within {timeout_s:g}s")
            fetched = await self._consumer.getmany(timeout_ms=int(min(remaining, 0.5) * 1000))
            for messages in fetched.values():
                for message in messages:
                    event = orjson.loads(message.value)
                    if on_event is not None and event.get("export_id") == export_id:
                        on_event(event)
                    if event.get("status") in {"completed", "failed"}:
                        self._seen.setdefault(event["export_id"], event)
        return self._seen.pop(export_id)


async def send_batches(
    producer: AIOKafkaProducer,
    topic: str,
    *,
    partition: int,
    key: bytes,
    batches: list[bytes],
    on_sent: Callable[[int], object] | None = None,
) -> tuple[int, int]:
    """Send each batch to one partition; the offset range (start inclusive, end exclusive)."""
    if not batches:
        return 0, 0
    first = last = -1
    window = 16
    for start in range(0, len(batches), window):
        futures = [
            await producer.send(topic, batch, key=key, partition=partition)
            for batch in batches[start : start + window]
        ]
        for metadata in await asyncio.gather(*futures):
            first = metadata.offset if first < 0 else min(first, metadata.offset)
            last = max(last, metadata.offset)
            if on_sent is not None:
                on_sent(1)
    return first, last + 1
