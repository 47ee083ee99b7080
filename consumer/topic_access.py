"""Which topics a request may read: `EXPORT_SOURCE_TOPICS`, minus what is never readable.

Whoever can write a request chooses its source topic, and the service reads with its
own credentials; this is where it decides what a request may reach (the confused-deputy
check). A refused topic fails with the very message a missing one gets, so a requester
cannot tell a topic that exists but is refused from one that does not exist; the log
says which it was. Every source form calls `TopicAccess.check` for each topic it would
read, before it fetches anything.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from aiokafka.errors import KafkaError

from consumer.errors import SourceUnavailable

if TYPE_CHECKING:
    from collections.abc import Iterable

    from consumer.settings import Settings

log = logging.getLogger(__name__)

LIST_TOPICS_S = 10.0
"""How long start-up waits for the topic list the unmatched-pattern warning needs."""
INTERNAL_TOPIC_PREFIX = "__"
"""Kafka's own topics (`__consumer_offsets`, `__transaction_state`) and, by convention,
other tools' internal ones."""


class TopicLister(Protocol):
    """What start-up needs of a Kafka client: the cluster's topic names."""

    async def topics(self) -> set[str]: ...


def unavailable(topic: str) -> SourceUnavailable:
    """The failure for a source topic that does not exist or may not be read: one message
    for both, so a requester cannot probe which topics exist."""
    return SourceUnavailable(
        f"source.topic: topic {topic!r} does not exist or is not readable by exports"
    )


@dataclass(frozen=True, slots=True)
class TopicAccess:
    """The topics requests may read."""

    patterns: tuple[str, ...]
    """Glob patterns (`fnmatch`, case-sensitive as topic names are) of readable topics."""
    own_topics: frozenset[str]
    """The service's request, result and dead-letter topics: never readable."""

    @classmethod
    def from_settings(cls, settings: Settings) -> TopicAccess:
        """The policy `EXPORT_SOURCE_TOPICS` and the service's own topics make."""
        own = {settings.request_topic, settings.result_topic, settings.dlq_topic}
        return cls(settings.source_topic_patterns, frozenset(own))

    def refusal(self, topic: str) -> str | None:
        """Why `topic` may not be read (for the log), or None when it may."""
        if topic.startswith(INTERNAL_TOPIC_PREFIX):
            return "an internal topic (__*)"
        if topic in self.own_topics:
            return "one of the service's own request, result or dead-letter topics"
        if not any(fnmatch.fnmatchcase(topic, pattern) for pattern in self.patterns):
            return "outside EXPORT_SOURCE_TOPICS"
        return None

    def check(self, topic: str, export_id: str | None = None) -> None:
        """Raise `source_unavailable` (the message a missing topic gets) unless requests may
        read `topic`; the log line says why it was refused."""
        why = self.refusal(topic)
        if why is None:
            return
        log.warning(
            "source topic %r refused: %s",
            topic,
            why,
            extra={"event": "source_refused", "export_id": export_id, "topic": topic},
        )
        raise unavailable(topic)

    def unmatched(self, topics: Iterable[str]) -> list[str]:
        """The patterns that match no readable topic among `topics`."""
        readable = [topic for topic in topics if self.refusal(topic) is None]
        return [
            pattern
            for pattern in self.patterns
            if not any(fnmatch.fnmatchcase(topic, pattern) for topic in readable)
        ]

    def warn_unmatched(self, topics: Iterable[str]) -> None:
        """Log once, at start-up, each pattern that matches no readable topic (a typo, or a
        topic not made yet: requests for it fail until it is)."""
        for pattern in self.unmatched(topics):
            log.warning(
                "EXPORT_SOURCE_TOPICS pattern %r matches no readable topic",
                pattern,
                extra={"event": "source_pattern_unmatched", "pattern": pattern},
            )

    async def warn_unmatched_on(self, client: TopicLister) -> None:
        """`warn_unmatched` with the cluster's topics; a broker that cannot list them in
        time gets a warning of its own, never a failed start-up (the check is advisory)."""
        try:
            async with asyncio.timeout(LIST_TOPICS_S):
                topics = await client.topics()
        except (TimeoutError, KafkaError) as exc:
            log.warning(
                "cannot list topics to check EXPORT_SOURCE_TOPICS: %s",
                str(exc) or type(exc).__name__,
                extra={"event": "source_patterns_unchecked"},
            )
            return
        self.warn_unmatched(topics)
