"""Which source topics requests may read: the patterns, and what is never readable."""

from __future__ import annotations

import logging

import pytest
from aiokafka.errors import KafkaError

from consumer.errors import FailureReason, SettingsError, SourceUnavailable
from consumer.settings import describe_settings, load_settings
from consumer.topic_access import TopicAccess, unavailable

OWN = {"request_topic": "req", "result_topic": "res", "dlq_topic": "dlq"}


def access(patterns: str = "*") -> TopicAccess:
    return TopicAccess.from_settings(load_settings({**OWN, "source_topics": patterns}))


class TestTopicAccess:
    def test_default_allows_ordinary_topics(self):
        """With the default `*`, any ordinary topic may be read."""
        access().check("sales.invoices")

    @pytest.mark.parametrize(
        "topic", ["__consumer_offsets", "__transaction_state", "req", "res", "dlq"]
    )
    def test_internal_and_own_topics_are_never_readable(self, topic):
        """Internal topics and the service's own ones are refused even when a pattern matches."""
        with pytest.raises(SourceUnavailable):
            access("*,__*,req,res,dlq").check(topic)

    def test_a_refusal_reads_like_a_missing_topic(self, caplog):
        """A refused topic fails `source_unavailable` with the message a missing one gets;
        only the log says it was refused, and why."""
        with caplog.at_level(logging.WARNING), pytest.raises(SourceUnavailable) as refused:
            access("sales.*").check("hr.salaries", "exp-1")
        assert refused.value.reason is FailureReason.SOURCE_UNAVAILABLE
        assert refused.value.message == unavailable("hr.salaries").message
        assert "does not exist or is not readable" in refused.value.message
        [record] = [r for r in caplog.records if getattr(r, "event", None) == "source_refused"]
        assert "outside EXPORT_SOURCE_TOPICS" in record.getMessage()
        assert record.__dict__["export_id"] == "exp-1"

    def test_globs_are_case_sensitive_and_whole(self):
        """`sales.*` matches `sales.x`, not `Sales.x` nor `presales.x`."""
        policy = access("sales.*, billing")
        policy.check("sales.x")
        policy.check("billing")
        for topic in ["Sales.x", "presales.x", "billing2"]:
            assert policy.refusal(topic) == "outside EXPORT_SOURCE_TOPICS"

    def test_unmatched_patterns_are_named(self, caplog):
        """A pattern that matches no readable topic is warned about, once each."""
        policy = access("sales.*,typo.*,__*")
        with caplog.at_level(logging.WARNING):
            policy.warn_unmatched(["sales.a", "__consumer_offsets", "req"])
        events = [
            r for r in caplog.records if r.__dict__.get("event") == "source_pattern_unmatched"
        ]
        assert [r.__dict__["pattern"] for r in events] == ["typo.*", "__*"]

    async def test_a_broker_that_cannot_list_topics_does_not_stop_start_up(self, caplog):
        """When the topic list fails, start-up goes on with one warning saying the patterns
        were not checked."""

        class Failing:
            async def topics(self) -> set[str]:
                raise KafkaError("metadata refused")

        with caplog.at_level(logging.WARNING):
            await access("sales.*").warn_unmatched_on(Failing())
        [record] = caplog.records
        assert record.__dict__["event"] == "source_patterns_unchecked"


class TestSetting:
    def test_patterns_are_trimmed_and_shown_by_config(self):
        """`EXPORT_SOURCE_TOPICS` is split on commas, trimmed, and `config` shows it."""
        settings = load_settings({"source_topics": " sales.* , billing "})
        assert settings.source_topic_patterns == ("sales.*", "billing")
        assert 'source_topics = "sales.*,billing"' in describe_settings(settings, {})

    @pytest.mark.parametrize("value", ["", "a,,b", " , "])
    def test_an_empty_pattern_stops_start_up(self, value):
        """An empty pattern is a bad setting, named by its flag."""
        with pytest.raises(SettingsError, match="--source-topics"):
            load_settings({"source_topics": value})
