"""Exports by time window across partitions, on a real broker."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import orjson

from consumer.events import RESULT_SCHEMA, validator
from consumer.topics import ensure_topics
from tests.integration.harness import output_of

BASE_MS = 1_793_491_200_000  # 2026-11-01T00:00:00Z
PARTITIONS = 3


def at(ms: int) -> str:
    """An RFC 3339 time for `ms` since the epoch."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


async def window_topic(harness) -> str:
    topic = f"{harness.records_topic}-window"
    await ensure_topics(harness.settings, {topic: PARTITIONS})
    return topic


async def send(harness, topic: str, partition: int, ts_ms: int, rows, *, key: str | None = None):
    await harness.producer.send_and_wait(
        topic,
        orjson.dumps(rows),
        partition=partition,
        timestamp_ms=ts_ms,
        key=key.encode() if key is not None else None,
    )


def window_request(export_id: str, topic: str, since_ms: int, until_ms: int, **source):
    return {
        "export_id": export_id,
        "format": "csv",
        "columns": ["id", "p"],
        "source": {"topic": topic, "since": at(since_ms), "until": at(until_ms), **source},
    }


async def seed_three_partitions(harness) -> str:
    """p0 at +1 s and +3 s, p1 at +2 s and +3 s (a tie), p2 before and after the window."""
    topic = await window_topic(harness)
    await send(harness, topic, 0, BASE_MS + 1000, [{"id": "a", "p": 0}])
    await send(harness, topic, 0, BASE_MS + 3000, [{"id": "c", "p": 0}])
    await send(harness, topic, 1, BASE_MS + 2000, [{"id": "b", "p": 1}, {"id": "b2", "p": 1}])
    await send(harness, topic, 1, BASE_MS + 3000, {"id": "d", "p": 1})
    await send(harness, topic, 2, BASE_MS - 1, [{"id": "early", "p": 2}])
    await send(harness, topic, 2, BASE_MS + 5000, [{"id": "late", "p": 2}])
    return topic


class TestWindowExport:
    async def test_partitions_interleave_by_timestamp(self, harness):
        """Every partition's records in the window, in timestamp order, ties to the lower
        partition; the result repeats the window and lists what each partition resolved to."""
        topic = await seed_three_partitions(harness)
        async with harness.service():
            await harness.send_request(window_request("w-1", topic, BASE_MS, BASE_MS + 5000))
            result = await harness.result("w-1")
        assert result["status"] == "completed", result
        assert output_of(result).read_bytes() == b"id,p\r\na,0\r\nb,1\r\nb2,1\r\nc,0\r\nd,1\r\n"
        assert result["records"] == 5
        assert result["source"] == {
            "topic": topic,
            "since": at(BASE_MS),
            "until": at(BASE_MS + 5000),
            "ranges": [
                {"partition": 0, "start_offset": 0, "end_offset": 2},
                {"partition": 1, "start_offset": 0, "end_offset": 2},
                {"partition": 2, "start_offset": 1, "end_offset": 1},
            ],
        }
        assert list(validator(RESULT_SCHEMA).iter_errors(result)) == []

    async def test_chosen_partitions_and_key(self, harness):
        """`partitions` limits the partitions read and `key` the batches that count."""
        topic = await window_topic(harness)
        await send(harness, topic, 0, BASE_MS + 1, [{"id": "mine-0", "p": 0}], key="k")
        await send(harness, topic, 1, BASE_MS + 2, [{"id": "mine-1", "p": 1}], key="k")
        await send(harness, topic, 1, BASE_MS + 3, [{"id": "theirs", "p": 1}], key="x")
        await send(harness, topic, 2, BASE_MS + 4, [{"id": "other-p", "p": 2}], key="k")
        body = window_request("w-2", topic, BASE_MS, BASE_MS + 10, partitions=[1, 0], key="k")
        async with harness.service():
            await harness.send_request(body)
            result = await harness.result("w-2")
        assert output_of(result).read_bytes() == b"id,p\r\nmine-0,0\r\nmine-1,1\r\n"
        assert [r["partition"] for r in result["source"]["ranges"]] == [0, 1]
        assert result["source"]["partitions"] == [0, 1]

    async def test_replay_answers_from_the_first_output(self, harness):
        """The same window asked again is a replay of the first output, even after records
        arrived inside it."""
        topic = await seed_three_partitions(harness)
        body = window_request("w-3", topic, BASE_MS, BASE_MS + 5000)
        async with harness.service():
            await harness.send_request(body)
            first = await harness.result("w-3")
            await send(harness, topic, 2, BASE_MS + 2500, [{"id": "new", "p": 2}])
            await harness.send_request(body)
            again = await harness.result("w-3", nth=2)
        assert again["replayed"] is True
        assert again["output"]["sha256"] == first["output"]["sha256"]
        assert again["source"] == first["source"]
        assert b"new" not in output_of(again).read_bytes()

    async def test_a_window_still_open_is_waited_for(self, harness):
        """An `until` ahead of now waits (one running event says until when), then reads
        every partition to its end at that moment."""
        topic = await window_topic(harness)
        now_ms = int(time.time() * 1000)
        until_ms = now_ms + 3000
        await send(harness, topic, 0, now_ms, [{"id": "before", "p": 0}])
        async with harness.service():
            await harness.send_request(window_request("w-4", topic, now_ms - 1000, until_ms))
            await send(harness, topic, 1, now_ms + 1000, [{"id": "during", "p": 1}])
            result = await harness.result("w-4")
            waiting = [e for e in harness.events("w-4") if e["status"] == "running"]
        assert result["status"] == "completed", result
        assert output_of(result).read_bytes() == b"id,p\r\nbefore,0\r\nduring,1\r\n"
        assert [e.get("waiting_until") for e in waiting] == [at(until_ms)]
        assert result["duration_ms"] >= 1000

    async def test_missing_topic_and_partition_name_them(self, harness):
        """A topic that does not exist, or a partition it does not have, is
        `source_unavailable` naming it."""
        topic = await window_topic(harness)
        missing = f"{topic}-missing"
        async with harness.service():
            await harness.send_request(window_request("w-5", missing, BASE_MS, BASE_MS + 10))
            await harness.send_request(
                window_request("w-6", topic, BASE_MS, BASE_MS + 10, partitions=[1, 7])
            )
            gone = await harness.result("w-5")
            no_partition = await harness.result("w-6")
        assert gone["error"]["reason"] == "source_unavailable"
        assert gone["error"]["message"] == (
            f"source.topic: topic {missing!r} does not exist or is not readable by exports"
        )
        assert no_partition["error"]["reason"] == "source_unavailable"
        assert no_partition["error"]["message"].startswith("source.partitions:")
        assert "7" in no_partition["error"]["message"]

    async def test_until_not_after_since_is_invalid(self, harness):
        """`until` not after `since` fails `invalid_request` naming source.until."""
        topic = await window_topic(harness)
        async with harness.service():
            await harness.send_request(window_request("w-7", topic, BASE_MS, BASE_MS))
            result = await harness.result("w-7")
        assert result["error"]["reason"] == "invalid_request"
        assert result["error"]["message"].startswith("source.until:")

    async def test_a_refused_topic_is_refused_for_windows_too(self, harness):
        """`EXPORT_SOURCE_TOPICS` holds for windows: a topic outside it reads as missing."""
        topic = await seed_three_partitions(harness)
        async with harness.service(source_topics="allowed.*"):
            await harness.send_request(window_request("w-8", topic, BASE_MS, BASE_MS + 5000))
            result = await harness.result("w-8")
        assert result["error"]["message"] == (
            f"source.topic: topic {topic!r} does not exist or is not readable by exports"
        )

    async def test_scanning_gives_the_same_output(self, harness):
        """`EXPORT_WINDOW_LOOKUP=scan` (what `dev` uses on the embedded broker, whose time
        index answers wrongly) reads whole partitions and writes the same bytes."""
        topic = await seed_three_partitions(harness)
        async with harness.service(window_lookup="scan"):
            await harness.send_request(window_request("w-9", topic, BASE_MS, BASE_MS + 5000))
            result = await harness.result("w-9")
        assert result["status"] == "completed", result
        assert output_of(result).read_bytes() == b"id,p\r\na,0\r\nb,1\r\nb2,1\r\nc,0\r\nd,1\r\n"
        assert result["source"]["ranges"][2] == {"partition": 2, "start_offset": 0, "end_offset": 2}
