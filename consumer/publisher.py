"""Publishes result events and dead letters, returning only once the broker acknowledged."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Self

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError

from consumer.errors import StartupError
from consumer.events import encode_progress, encode_result
from consumer.logs import silenced
from consumer.settings import env_name

if TYPE_CHECKING:
    from types import TracebackType

    from aiokafka.structs import ConsumerRecord

    from consumer.errors import ExportError
    from consumer.settings import Settings
    from consumer.structs import ExportProgress, ExportResult

log = logging.getLogger(__name__)

RETRY_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)


class ResultPublisher:
    """One producer (acks=all) for the result and dead-letter topics.

    A send that fails is retried with backoff until it is acknowledged or the
    caller is cancelled: a request's offset is committed only after its result
    is acknowledged, so giving up would lose the result.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer = AIOKafkaProducer(
            **settings.kafka_client_options(),
            acks="all",
            enable_idempotence=settings.enable_idempotence,
            linger_ms=0,
        )
        self._started = False

    async def start(self) -> None:
        """Connect; with idempotence on, this is when the broker hands out a producer id."""
        try:
            # A refused InitProducerId is logged there as an error, then raised; the raise
            # becomes start-up's one line, so the log line would only repeat it.
            with silenced("aiokafka.producer.sender"):
                await self._producer.start()
        except KafkaConnectionError:
            await self._producer.stop()
            raise
        except KafkaError as exc:
            await self._producer.stop()
            if not self._settings.enable_idempotence:
                raise
            raise StartupError(
                f"the broker at {self._settings.bootstrap_servers} refused to hand out a "
                f"producer id for the idempotent producer (InitProducerId: {exc}); for a "
                f"broker without it, set {env_name('enable_idempotence')}=false"
            ) from exc
        self._started = True

    async def partitions_for(self, topic: str) -> set[int]:
        """The topic's partitions, asking the broker (which may create the topic)."""
        partitions: set[int] = await self._producer.partitions_for(topic)
        return partitions

    async def stop(self) -> None:
        """Flush what is pending and close; safe to call twice."""
        if self._started:
            self._started = False
            await self._producer.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def publish_result(self, result: ExportResult) -> None:
        await self._send(
            self._settings.result_topic,
            encode_result(result),
            key=result.export_id.encode(),
            headers=[],
            what=f"result of {result.export_id}",
        )

    async def publish_progress(self, progress: ExportProgress) -> None:
        """Best effort: a `running` event is queued, never retried, never waited for.

        It shares the result's key, so it lands on the same partition, before the result.
        """
        try:
            delivery = await self._producer.send(
                self._settings.result_topic,
                encode_progress(progress),
                key=progress.export_id.encode(),
            )
        except KafkaError as exc:
            log.debug("progress not sent: %s", exc, extra={"export_id": progress.export_id})
            return
        delivery.add_done_callback(_drop_delivery_error)

    async def publish_dead_letter(
        self, message: ConsumerRecord[bytes, bytes], error: ExportError
    ) -> None:
        """Copy a request that has no usable export_id, unchanged, with why in headers."""
        headers = [
            ("error.reason", error.reason.value.encode()),
            ("error.message", error.message.encode()),
            ("source.topic", message.topic.encode()),
            ("source.partition", str(message.partition).encode()),
            ("source.offset", str(message.offset).encode()),
        ]
        await self._send(
            self._settings.dlq_topic,
            message.value,
            key=message.key,
            headers=headers,
            what=f"dead letter from offset {message.offset}",
        )

    async def _send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None,
        headers: list[tuple[str, bytes]],
        what: str,
    ) -> None:
        attempt = 0
        while True:
            try:
                await self._producer.send_and_wait(topic, value, key=key, headers=headers)
            except KafkaError as exc:
                delay = RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S) - 1)]
                attempt += 1
                log.warning(
                    "publishing %s failed (%s), retrying in %.1fs",
                    what,
                    exc,
                    delay,
                    extra={"event": "publish_retry", "topic": topic},
                )
                await asyncio.sleep(delay)
            else:
                return


def _drop_delivery_error(delivery: asyncio.Future[object]) -> None:
    # Reading the exception marks it handled; a lost progress event only delays a bar.
    if not delivery.cancelled() and delivery.exception() is not None:
        log.debug("progress event not delivered: %s", delivery.exception())
