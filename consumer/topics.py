"""The service's topics: created by `dev` and tests, required at start-up by `run`
(production creates them by hand, or lets the broker create them), and which partitions a
topic has, read without creating it."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, TopicAuthorizationFailedError

from consumer.errors import StartupError
from consumer.logs import silenced
from consumer.settings import env_name

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from aiokafka import AIOKafkaConsumer

    from consumer.publisher import ResultPublisher
    from consumer.settings import Settings

log = logging.getLogger(__name__)

REQUEST_PARTITIONS = 4
RECORDS_TOPIC = "export.records"
RECORDS_PARTITIONS = 3
"""As the compose file makes it: the demo's time window reads across partitions."""
TOPIC_CHECK_S = 10.0


def service_topics(settings: Settings) -> dict[str, int]:
    """The topics `dev` creates, with their partition counts."""
    return {
        settings.request_topic: REQUEST_PARTITIONS,
        settings.result_topic: 1,
        settings.dlq_topic: 1,
        RECORDS_TOPIC: RECORDS_PARTITIONS,
    }


async def ensure_topics(
    settings: Settings, topics: Mapping[str, int], *, replication: int | Sequence[int] = 1
) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are.

    `replication` is the replication factor, or the broker ids that hold every partition
    of the new topics, the first one their preferred leader.
    """
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            _new_topic(name, partitions, replication)
            for name, partitions in topics.items()
            if name not in existing
        ]
        if not wanted:
            return
        response = await admin.create_topics(wanted)
        for name, code, message in (tuple(e)[:3] for e in response.topic_errors):
            if code not in (0, TopicAlreadyExistsError.errno):
                raise RuntimeError(f"cannot create topic {name}: error {code} {message}")
        log.info(
            "topics created", extra={"event": "topics_created", "topics": [t.name for t in wanted]}
        )
    finally:
        await admin.close()


def _new_topic(name: str, partitions: int, replication: int | Sequence[int]) -> NewTopic:
    if isinstance(replication, int):
        return NewTopic(name, partitions, replication)
    assignment = {p: list(replication) for p in range(partitions)}
    return NewTopic(name, -1, -1, replica_assignments=assignment)


async def require_topics(settings: Settings, publisher: ResultPublisher) -> None:
    """Raise `StartupError` naming the first of the service's own topics that does not
    exist and that the broker did not create when asked for it (auto-creation off)."""
    own = {
        "request_topic": settings.request_topic,
        "result_topic": settings.result_topic,
        "dlq_topic": settings.dlq_topic,
    }
    for field, topic in own.items():
        try:
            # aiokafka logs an error on every retry while the topic is missing.
            async with asyncio.timeout(TOPIC_CHECK_S):
                with silenced("aiokafka.cluster"):
                    await publisher.partitions_for(topic)
        except TopicAuthorizationFailedError as exc:
            raise StartupError(
                f"the topic {topic!r} ({env_name(field)}) is not accessible to this service's "
                f"credentials on the broker at {settings.bootstrap_servers}"
            ) from exc
        except (TimeoutError, KafkaError) as exc:
            why = str(exc) or type(exc).__name__
            raise StartupError(
                f"the topic {topic!r} ({env_name(field)}) does not exist on the broker at "
                f"{settings.bootstrap_servers} and was not created when asked for ({why}): "
                f"create it, or allow auto-creation"
            ) from exc


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> frozenset[int] | None:
    """The partitions of `topic`, or None when it does not exist, from fresh metadata.

    One metadata request for all topics: asking for one by name would create it on
    brokers that auto-create topics. `consumer.topics()` makes that request but keeps only
    the names, and `consumer.partitions_for_topic()` reads the client's own cache, which
    on Apache Kafka knows no topic at all until the consumer is assigned one (aiokafka
    bootstraps with an empty topic list, which Kafka answers with no topics; Tansu, with
    all of them).
    """
    cluster = await consumer._client.fetch_all_metadata()  # noqa: SLF001 - see the docstring
    if topic not in cluster.topics():
        return None
    return frozenset(cluster.partitions_for_topic(topic) or ())
