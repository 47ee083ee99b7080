"""Creates the service's topics (for `dev` and tests; production creates them by hand)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from consumer.settings import Settings

log = logging.getLogger(__name__)

REQUEST_PARTITIONS = 4
RECORDS_TOPIC = "export.records"


def service_topics(settings: Settings) -> dict[str, int]:
    """The topics `dev` creates, with their partition counts."""
    return {
        settings.request_topic: REQUEST_PARTITIONS,
        settings.result_topic: 1,
        settings.dlq_topic: 1,
        RECORDS_TOPIC: 1,
    }


async def ensure_topics(settings: Settings, topics: Mapping[str, int]) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(name, partitions, 1)
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
