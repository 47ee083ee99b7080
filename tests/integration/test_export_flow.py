"""End to end on a real broker: requests in, files out, results back, offsets committed."""

from __future__ import annotations

import asyncio
import hashlib

import orjson

from consumer.events import RESULT_SCHEMA, validator
from tests.integration.harness import metric_value, output_of, scrape

ROWS = [
    {"id": 1, "name": 'Zoë, "the" first', "amount": 12.5},
    {"id": 2, "name": "=cmd()", "amount": -3},
    {"id": 3, "name": None, "extra": True},
]
EXPECTED_CSV = b'id,name,amount\r\n1,"Zo\xc3\xab, ""the"" first",12.5\r\n2,\'=cmd(),-3\r\n3,,\r\n'


class TestCompletedExport:
    async def test_csv_bytes_result_and_commit(self, harness):
        """A CSV request yields the exact bytes, a schema-valid result and then a commit."""
        start, end = await harness.write_batches([ROWS[:2], ROWS[2]])
        async with harness.service() as service:
            offset = await harness.send_request(harness.request("inv-1", start, end))
            result = await harness.result("inv-1")
            path = output_of(result)
            assert path.read_bytes() == EXPECTED_CSV
            assert path.parent == harness.output_dir.resolve()
            assert result["status"] == "completed"
            assert result["records"] == 3
            assert result["bytes"] == len(EXPECTED_CSV)
            assert result["output"]["sha256"] == hashlib.sha256(EXPECTED_CSV).hexdigest()
            assert result["source"] == {
                "topic": harness.records_topic,
                "partition": 0,
                "start_offset": start,
                "end_offset": end,
                "ranges": [{"partition": 0, "start_offset": start, "end_offset": end}],
            }
            assert result["replayed"] is False
            assert list(validator(RESULT_SCHEMA).iter_errors(result)) == []
            # The result is counted once the broker acknowledges it, which may be just
            # after the requester has read it.
            for _ in range(50):
                status, text = scrape(service.metrics_port)
                counted = metric_value(
                    text, "export_requests_total", format="csv", status="completed"
                )
                if counted is not None:
                    break
                await asyncio.sleep(0.1)
            assert status == 200
            assert counted == 1
            committed = None
            for _ in range(50):
                committed = await harness.committed(0) or await harness.committed(1)
                if committed:
                    break
                await asyncio.sleep(0.1)
            assert committed == offset + 1
        # Only the output and its manifest are there: no temporary or claim files left.
        assert sorted(p.name for p in harness.output_dir.iterdir()) == [
            ".inv-1.manifest.json",
            "inv-1.csv",
        ]

    async def test_key_filter_that_selects_nothing_gives_header_only(self, harness):
        """With a key that no batch has, the file holds only the header and 0 records."""
        start, end = await harness.write_batches([ROWS], key="someone-else")
        async with harness.service():
            body = harness.request("nobody", start, end)
            body["source"]["key"] = "nobody"
            await harness.send_request(body)
            result = await harness.result("nobody")
        assert result["status"] == "completed"
        assert result["records"] == 0
        assert output_of(result).read_bytes() == b"id,name,amount\r\n"

    async def test_key_filter_keeps_only_matching_batches(self, harness):
        """Batches of other keys in the range are skipped."""
        start, _ = await harness.write_batches([ROWS[0]], key="mine")
        await harness.write_batches([ROWS[1]], key="theirs")
        _, end = await harness.write_batches([ROWS[2]], key="mine")
        async with harness.service():
            body = harness.request("mine", start, end)
            body["source"]["key"] = "mine"
            await harness.send_request(body)
            result = await harness.result("mine")
        assert output_of(result).read_bytes() == b"id,name,amount\r\n" + EXPECTED_CSV.split(
            b"\r\n", 1
        )[1].replace(b"2,'=cmd(),-3\r\n", b"")

    async def test_records_written_after_the_request_are_waited_for(self, harness):
        """A range not yet filled completes once its records arrive."""
        start, _ = await harness.write_batches([ROWS[0]])
        async with harness.service():
            await harness.send_request(harness.request("later", start, start + 2))
            await asyncio.sleep(1.0)
            await harness.write_batches([ROWS[1]])
            result = await harness.result("later")
        assert result["status"] == "completed"
        assert result["records"] == 2

    async def test_options_delimiter_bom_no_header_no_escaping(self, harness):
        """Options change the bytes: BOM, `;`, no header, formulas left as they are."""
        start, end = await harness.write_batches([ROWS[1]])
        async with harness.service():
            await harness.send_request(
                harness.request(
                    "opts",
                    start,
                    end,
                    options={
                        "delimiter": ";",
                        "bom": True,
                        "header": False,
                        "escape_formulas": False,
                    },
                )
            )
            result = await harness.result("opts")
        assert output_of(result).read_bytes() == b"\xef\xbb\xbf2;=cmd();-3\r\n"


class TestIdempotency:
    async def test_replay_publishes_same_result_and_rewrites_nothing(self, harness):
        """The same request again gives `replayed: true`, the same sha256, an untouched file."""
        start, end = await harness.write_batches([ROWS])
        body = harness.request("again", start, end)
        async with harness.service():
            await harness.send_request(body)
            first = await harness.result("again")
            stat = output_of(first).stat()
            await harness.send_request(body)
            second = await harness.result("again", nth=2)
        assert second["replayed"] is True
        assert second["output"] == first["output"]
        assert second["records"] == first["records"]
        assert output_of(first).stat().st_mtime_ns == stat.st_mtime_ns
        assert output_of(first).stat().st_ino == stat.st_ino

    async def test_replay_survives_a_restart(self, harness):
        """A new service process over the same output directory still knows the export."""
        start, end = await harness.write_batches([ROWS])
        body = harness.request("durable", start, end)
        async with harness.service():
            await harness.send_request(body)
            first = await harness.result("durable")
        # A fresh group reads the request topic from the start: both requests come again.
        async with harness.service(group_id=harness.base["group_id"] + "-2"):
            await harness.send_request(body)
            replays = [await harness.result("durable", nth=n) for n in (2, 3)]
        assert all(r["replayed"] for r in replays)
        assert {r["output"]["sha256"] for r in replays} == {first["output"]["sha256"]}

    async def test_different_request_under_same_id_is_a_conflict(self, harness):
        """Another request under a used id fails with `conflict` and leaves the output alone."""
        start, end = await harness.write_batches([ROWS])
        async with harness.service():
            await harness.send_request(harness.request("taken", start, end))
            first = await harness.result("taken")
            before = output_of(first).read_bytes()
            await harness.send_request(harness.request("taken", start, end, columns=["id"]))
            second = await harness.result("taken", nth=2)
        assert second["status"] == "failed"
        assert second["error"]["reason"] == "conflict"
        assert "taken" in second["error"]["message"]
        assert output_of(first).read_bytes() == before

    async def test_failed_export_is_retried_when_requested_again(self, harness):
        """After a failure the same request runs again and can complete."""
        async with harness.service():
            body = harness.request("retry", 0, 1)
            body["source"]["topic"] = harness.records_topic + "-late"
            await harness.send_request(body)
            failed = await harness.result("retry")
            assert failed["error"]["reason"] == "source_unavailable"
            await harness.write_batches([ROWS[0]], topic=body["source"]["topic"])
            await harness.send_request(body)
            done = await harness.result("retry", nth=2)
        assert done["status"] == "completed"
        assert done["replayed"] is False
        assert done["records"] == 1


class TestFailures:
    async def test_non_json_batch_fails_with_its_offset_and_no_file(self, harness):
        """A batch that is not JSON fails the export as `bad_record`, naming its offset."""
        start, _ = await harness.write_batches([ROWS[0]])
        bad, end = await harness.write_batches([b"{not json"])
        async with harness.service():
            await harness.send_request(harness.request("bad", start, end))
            result = await harness.result("bad")
        assert result["status"] == "failed"
        assert result["error"]["reason"] == "bad_record"
        assert result["error"]["offset"] == bad
        assert f"offset {bad}" in result["error"]["message"]
        assert list(harness.output_dir.iterdir()) == []

    async def test_bad_records_within_max_bad_records_are_skipped(self, harness, caplog):
        """`max_bad_records` lets an export skip bad records, count them, and log each offset."""
        start, end = await harness.write_batches([[ROWS[0], 7, "x"], b"nope", ROWS[1]])
        async with harness.service():
            await harness.send_request(
                harness.request("skip", start, end, options={"max_bad_records": 3})
            )
            result = await harness.result("skip")
        assert result["status"] == "completed"
        assert result["skipped"] == 3
        assert result["records"] == 2
        skipped = [r for r in caplog.records if getattr(r, "event", None) == "record_skipped"]
        assert [r.offset for r in skipped] == [start, start + 1]

    async def test_missing_source_topic_is_source_unavailable_and_not_created(self, harness):
        """A source topic that does not exist fails fast; the service does not create it."""
        missing = harness.records_topic + "-missing"
        async with harness.service():
            body = harness.request("nosrc", 0, 10)
            body["source"]["topic"] = missing
            await harness.send_request(body)
            result = await harness.result("nosrc")
            topics = await harness.results._client.fetch_all_metadata()
        assert result["error"]["reason"] == "source_unavailable"
        assert missing in result["error"]["message"]
        assert missing not in topics.topics()

    async def test_missing_partition_is_source_unavailable(self, harness):
        """A partition the topic does not have is named in the failure."""
        async with harness.service():
            body = harness.request("nopart", 0, 1)
            body["source"]["partition"] = 7
            await harness.send_request(body)
            result = await harness.result("nopart")
        assert result["error"]["reason"] == "source_unavailable"
        assert "source.partition" in result["error"]["message"]

    async def test_range_never_filled_times_out(self, harness):
        """A range whose records never come fails with `timeout` at the deadline."""
        start, _ = await harness.write_batches([ROWS[0]])
        async with harness.service(timeout_s=2):
            await harness.send_request(harness.request("slow", start, start + 5))
            result = await harness.result("slow")
        assert result["error"]["reason"] == "timeout"
        assert "1 records written" in result["error"]["message"]
        assert list(harness.output_dir.iterdir()) == []

    async def test_invalid_request_fails_naming_the_field(self, harness):
        """A request that breaks the schema gets `invalid_request` with the field's name."""
        async with harness.service():
            await harness.send_request(
                {
                    "export_id": "broken",
                    "format": "docx",
                    "columns": ["a"],
                    "source": {"topic": "t", "partition": 0, "start_offset": 0, "end_offset": 1},
                }
            )
            result = await harness.result("broken")
        assert result["status"] == "failed"
        assert result["error"]["reason"] == "invalid_request"
        assert result["error"]["message"].startswith("format:")
        assert list(validator(RESULT_SCHEMA).iter_errors(result)) == []


class TestDeadLetters:
    async def test_unroutable_requests_go_to_the_dlq_with_headers(self, harness):
        """Requests with no usable export_id are copied to the DLQ unchanged, with why."""
        poison = [b"\xff\xfenot json", b"[1, 2]", orjson.dumps({"export_id": "../../etc/passwd"})]
        async with harness.service() as service:
            offsets = [await harness.send_request(p, key=b"k") for p in poison]
            letters = await harness.dead_letters(3)
            # The service goes on: a valid request after the poison completes.
            start, end = await harness.write_batches([ROWS[0]])
            await harness.send_request(harness.request("after-poison", start, end))
            assert (await harness.result("after-poison"))["status"] == "completed"
            assert service.readiness.reason is None
        assert sorted(m.value for m in letters) == sorted(poison)
        for letter in letters:
            headers = dict(letter.headers)
            assert headers["error.reason"] == b"invalid_request"
            assert headers["error.message"]
            assert headers["source.topic"] == harness.settings.request_topic.encode()
            assert int(headers["source.offset"]) in offsets
        messages = {dict(m.headers)["error.message"] for m in letters}
        assert any(b"not JSON" in m for m in messages)
        assert any(b"export_id" in m for m in messages)
        # Nothing was written anywhere near the path the id pointed at.
        assert sorted(p.name for p in harness.root.iterdir()) == ["exports"]


class TestBoundedWork:
    async def test_no_more_than_max_in_flight_run_and_the_rest_are_not_fetched(self, harness):
        """With 2 slots and 5 waiting exports, 2 run, none queue, and all finish later."""
        start, _ = await harness.write_batches([ROWS[0]])
        async with harness.service(max_in_flight=2) as service:
            for n in range(5):
                await harness.send_request(harness.request(f"wait-{n}", start, start + 2))
            seen_running = []
            for _ in range(20):
                _, text = scrape(service.metrics_port)
                seen_running.append(metric_value(text, "export_concurrent_running"))
                assert metric_value(text, "export_queue_depth") == 0
                await asyncio.sleep(0.1)
            assert max(v or 0 for v in seen_running) == 2
            await harness.write_batches([ROWS[1]])
            results = [await harness.result(f"wait-{n}") for n in range(5)]
        assert {r["status"] for r in results} == {"completed"}

    async def test_commit_never_passes_an_unfinished_request(self, harness):
        """A later request finishing first does not commit past an earlier running one."""
        start, _ = await harness.write_batches([ROWS[0]])
        async with harness.service():
            slow = harness.request("slow-first", start, start + 2)
            fast = harness.request("fast-second", start, start + 1)
            # Same key: both land on one request partition, slow one first.
            first = await harness.send_request(slow, key=b"same")
            second = await harness.send_request(fast, key=b"same")
            assert (await harness.result("fast-second"))["status"] == "completed"
            await asyncio.sleep(0.5)
            partition = await _partition_of(harness)
            assert await harness.committed(partition) in (None, first)
            await harness.write_batches([ROWS[1]])
            await harness.result("slow-first")
            for _ in range(50):
                if await harness.committed(partition) == second + 1:
                    break
                await asyncio.sleep(0.1)
            assert await harness.committed(partition) == second + 1


async def _partition_of(harness) -> int:
    for partition in (0, 1):
        consumer_offsets = await harness.committed(partition)
        if consumer_offsets is not None:
            return partition
    # Nothing committed yet on either: find the partition holding the requests.
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=harness.settings.bootstrap_servers)
    await consumer.start()
    try:
        tps = [TopicPartition(harness.settings.request_topic, p) for p in (0, 1)]
        ends = await consumer.end_offsets(tps)
        return int(next(tp.partition for tp, end in ends.items() if end > 0))
    finally:
        await consumer.stop()
