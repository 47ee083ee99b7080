"""Least privilege, as a requester meets it: refused topics, size limits, abusive requests."""

from __future__ import annotations

import asyncio
import logging
import secrets

import pytest

from consumer.storage.local import TEMP_SUFFIX
from consumer.topics import ensure_topics
from tests.integration.harness import metric_value, scrape


def rows(count: int, width: int = 60) -> list[dict[str, object]]:
    return [{"id": i, "name": f"{i:0{width}d}", "amount": i / 4} for i in range(count)]


def visible(harness) -> list[str]:
    """The output directory's files a user could see, and any staged part left behind
    (hidden files are otherwise the store's records and claims)."""
    if not harness.output_dir.exists():
        return []
    return sorted(
        p.name
        for p in harness.output_dir.iterdir()
        if not p.name.startswith(".") or p.name.endswith(TEMP_SUFFIX)
    )


def failure(result) -> tuple[str, str]:
    assert result["status"] == "failed", result
    return result["error"]["reason"], result["error"]["message"]


class TestSourceTopics:
    async def test_refused_topics_read_like_missing_ones(self, harness, caplog):
        """Internal topics, the service's own and one outside EXPORT_SOURCE_TOPICS fail
        `source_unavailable` with the message of a topic that does not exist; the log says
        which it was, and a pattern matching nothing was warned about at start-up."""
        caplog.set_level(logging.INFO, logger="consumer")
        s = harness.settings
        outside = f"other-{secrets.token_hex(4)}"
        await ensure_topics(s, {outside: 1})
        await harness.write_batches([rows(3)], topic=outside)
        start, end = await harness.write_batches([rows(3)])
        missing = harness.records_topic + "-missing"
        refused = ["__consumer_offsets", s.request_topic, s.result_topic, s.dlq_topic, outside]
        patterns = f"{harness.records_topic}*,nothing-{secrets.token_hex(2)}-*"
        async with harness.service(source_topics=patterns) as service:
            for n, topic in enumerate([*refused, missing]):
                body = harness.request(f"t{n}", 0, 1)
                body["source"]["topic"] = topic
                await harness.send_request(body)
            await harness.send_request(harness.request("allowed", start, end))
            results = [await harness.result(f"t{n}") for n in range(len(refused) + 1)]
            allowed = await harness.result("allowed")
            _, text = scrape(service.metrics_port)
        assert allowed["status"] == "completed", allowed
        messages = set()
        for topic, result in zip([*refused, missing], results, strict=True):
            reason, message = failure(result)
            assert reason == "source_unavailable"
            messages.add(message.replace(repr(topic), "T"))
        assert messages == {"source.topic: topic T does not exist or is not readable by exports"}
        assert (
            metric_value(text, "export_fail_total", reason="source_unavailable", format="csv") == 6
        )
        why = {
            r.__dict__["topic"]: r.getMessage()
            for r in caplog.records
            if r.__dict__.get("event") == "source_refused"
        }
        assert set(why) == set(refused)
        assert "internal topic" in why["__consumer_offsets"]
        assert "own request, result or dead-letter" in why[s.result_topic]
        assert "outside EXPORT_SOURCE_TOPICS" in why[outside]
        assert any(r.__dict__.get("event") == "source_missing" for r in caplog.records)
        unmatched = [
            r.__dict__["pattern"]
            for r in caplog.records
            if r.__dict__.get("event") == "source_pattern_unmatched"
        ]
        assert unmatched == [patterns.split(",")[1]]


class TestSizeLimits:
    async def test_record_limit_in_csv_to_files_and_pdf_to_the_bucket(
        self, harness, seaweed, bucket, s3
    ):
        """Past EXPORT_MAX_RECORDS a CSV to the directory and a PDF to the bucket fail
        `too_large` naming the limit and the setting, and leave nothing to see."""
        start, end = await harness.write_batches([rows(40)] * 5)
        async with harness.service(max_records=100) as service:
            await harness.send_request(harness.request("many-csv", start, end))
            csv = await harness.result("many-csv")
            _, text = scrape(service.metrics_port)
        async with harness.service(max_records=100, **s3):
            await harness.send_request(harness.request("many-pdf", start, end, format="pdf"))
            pdf = await harness.result("many-pdf")
        for result in (csv, pdf):
            reason, message = failure(result)
            assert reason == "too_large"
            assert "100 records" in message
            assert "EXPORT_MAX_RECORDS" in message
        assert visible(harness) == []
        assert seaweed.outputs(bucket) == []
        assert seaweed.uploads(bucket) == []
        assert metric_value(text, "export_fail_total", reason="too_large", format="csv") == 1

    async def test_byte_limit_in_csv_to_the_bucket_aborts_the_upload(
        self, harness, seaweed, bucket, s3
    ):
        """A CSV past EXPORT_MAX_OUTPUT_BYTES, after a multipart upload has begun, fails
        `too_large` naming the setting; no object and no unfinished upload are left."""
        start, end = await harness.write_batches([rows(1000, width=100)] * 120)  # ~14 MB of CSV
        async with harness.service(max_output_bytes=10 * 1024 * 1024, **s3):
            await harness.send_request(harness.request("heavy", start, end))
            result = await harness.result("heavy")
        reason, message = failure(result)
        assert reason == "too_large"
        assert "10,485,760 bytes" in message
        assert "EXPORT_MAX_OUTPUT_BYTES" in message
        assert result["records"] > 0  # it failed mid-way, not before reading
        assert seaweed.outputs(bucket) == []
        assert seaweed.uploads(bucket) == []

    async def test_byte_limit_in_pdf_to_files(self, harness):
        """A PDF report larger than EXPORT_MAX_OUTPUT_BYTES fails `too_large`; no file."""
        start, end = await harness.write_batches([rows(200)])
        async with harness.service(max_output_bytes=2048):
            await harness.send_request(harness.request("thick", start, end, format="pdf"))
            result = await harness.result("thick")
        reason, message = failure(result)
        assert reason == "too_large"
        assert "EXPORT_MAX_OUTPUT_BYTES" in message
        assert visible(harness) == []

    async def test_a_range_longer_than_the_record_limit_fails_before_reading(self, harness):
        """A range of more offsets than EXPORT_MAX_RECORDS fails `too_large` at once, though
        its records are not yet written (reading would wait for them until the deadline)."""
        start, _ = await harness.write_batches([rows(3)])
        async with harness.service(max_records=1000):
            await harness.send_request(harness.request("long", start, start + 1001))
            result = await harness.result("long")
        reason, message = failure(result)
        assert reason == "too_large"
        assert "1,001 offsets" in message
        assert "EXPORT_MAX_RECORDS" in message
        assert result["records"] == 0


class TestAbusiveRequests:
    @pytest.mark.parametrize(
        ("fields", "named"),
        [
            (
                {"title": "T" * 10_000},
                "title: is 10,000 characters long, more than the 500 allowed",
            ),
            (
                {"columns": ["id", {"field": "name", "label": "L" * 10_000}]},
                "columns[1].label: is 10,000 characters long, more than the 256 allowed",
            ),
            ({"requested_by": "R" * 10_000}, "requested_by: is 10,000 characters long"),
        ],
    )
    async def test_huge_strings_are_invalid_requests_naming_the_field(self, harness, fields, named):
        """A 10,000-character title, label or requester is `invalid_request` with a short
        message naming the field and its limit; no output appears."""
        start, end = await harness.write_batches([rows(3)])
        async with harness.service():
            await harness.send_request(harness.request("huge", start, end, format="pdf", **fields))
            result = await harness.result("huge")
        reason, message = failure(result)
        assert reason == "invalid_request"
        assert message.startswith(named)
        assert len(message) < 200
        assert visible(harness) == []

    @pytest.mark.timeout(600)
    async def test_a_burst_from_one_requester(self, harness):
        """1,000 requests from one `requested_by` at once are all answered, the service's
        memory stays flat, and the `user` label stays within its cap."""
        start, end = await harness.write_batches([rows(3)])
        async with harness.service(metrics_max_users=5) as service:
            for n in range(20):  # warm up, and more requesters than the cap allows
                await harness.send_request(
                    harness.request(f"warm-{n}", start, end, requested_by=f"user-{n}")
                )
            for n in range(20):
                await harness.result(f"warm-{n}")
            before = service._resident_memory()
            await asyncio.gather(
                *(
                    harness.send_request(
                        harness.request(f"burst-{n}", start, end, requested_by="mallory")
                    )
                    for n in range(1000)
                )
            )
            results = [await harness.result(f"burst-{n}", wait_s=300) for n in range(1000)]
            after = service._resident_memory()
            _, text = scrape(service.metrics_port)
        assert {r["status"] for r in results} == {"completed"}
        assert after - before < 64 * 1024 * 1024, (before, after)
        users = {
            line.split('user="')[1].split('"')[0]
            for line in text.splitlines()
            if line.startswith("export_requests_total{")
        }
        # The first five requesters to arrive keep their names (the two request partitions
        # are read in no fixed order); everyone after them, mallory too, is `other`.
        assert "other" in users
        assert len(users - {"other"}) == 5
        assert users - {"other"} <= {f"user-{n}" for n in range(20)}
        other = metric_value(
            text, "export_requests_total", format="csv", status="completed", user="other"
        )
        assert other == 15 + 1000
