"""Exports to a real S3-compatible store (SeaweedFS): objects in the bucket, download links,
replays and conflicts from the bucket alone, nothing half-made left behind."""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
import subprocess
import sys
import urllib.request

import orjson
import pypdf
import pytest

from consumer.broker import free_port
from consumer.events import RESULT_SCHEMA, decode_request, validator
from tests.integration.conftest import S3_PREFIX as PREFIX
from tests.integration.test_startup import _one_line as one_line
from tests.integration.test_startup import _run as run_cli
from tests.seaweed import ACCESS_KEY, SECRET_KEY

ROWS = [
    {"id": 1, "name": 'Zoë, "the" first', "amount": 12.5},
    {"id": 2, "name": "=cmd()", "amount": -3},
    {"id": 3, "name": None, "extra": True},
]
EXPECTED_CSV = b'id,name,amount\r\n1,"Zo\xc3\xab, ""the"" first",12.5\r\n2,\'=cmd(),-3\r\n3,,\r\n'


def download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our test server
        return bytes(response.read())


class TestExportToBucket:
    async def test_csv_lands_in_the_bucket_with_a_working_link(self, harness, seaweed, bucket, s3):
        """A CSV export is the object `{prefix}/{id}.csv`; its result names it, carries a
        presigned link that downloads the same bytes, and nothing is written locally."""
        start, end = await harness.write_batches([ROWS[:2], ROWS[2]])
        async with harness.service(**s3):
            await harness.send_request(harness.request("inv-1", start, end))
            result = await harness.result("inv-1")
        assert result["status"] == "completed", result
        assert result["output"]["uri"] == f"s3://{bucket}/{PREFIX}/inv-1.csv"
        assert seaweed.read(bucket, f"{PREFIX}/inv-1.csv") == EXPECTED_CSV
        assert result["output"]["sha256"] == hashlib.sha256(EXPECTED_CSV).hexdigest()
        assert result["bytes"] == len(EXPECTED_CSV)
        assert download(result["output"]["url"]) == EXPECTED_CSV
        assert result["output"]["expires_at"] > result["finished_at"]
        assert list(validator(RESULT_SCHEMA).iter_errors(result)) == []
        assert seaweed.outputs(bucket) == [f"{PREFIX}/inv-1.csv"]
        assert seaweed.uploads(bucket) == []
        assert not harness.output_dir.exists()

    async def test_pdf_lands_in_the_bucket(self, harness, seaweed, bucket, s3):
        """A PDF report is stored as `{prefix}/{id}.pdf` and reads back as the report."""
        start, end = await harness.write_batches([ROWS])
        async with harness.service(**s3):
            body = harness.request("report-1", start, end, format="pdf", title="Quarterly")
            await harness.send_request(body)
            result = await harness.result("report-1")
        assert result["status"] == "completed", result
        data = seaweed.read(bucket, f"{PREFIX}/report-1.pdf")
        assert result["output"]["sha256"] == hashlib.sha256(data).hexdigest()
        text = pypdf.PdfReader(io.BytesIO(data)).pages[0].extract_text()
        assert "Quarterly" in text
        assert "=cmd()" in text
        assert download(result["output"]["url"]) == data

    async def test_no_link_when_presigning_is_off(self, harness, s3):
        """With EXPORT_S3_PRESIGN_S=0 the result names the object but carries no link."""
        start, end = await harness.write_batches([ROWS])
        async with harness.service(**s3, s3_presign_s=0):
            await harness.send_request(harness.request("plain", start, end))
            result = await harness.result("plain")
        assert result["status"] == "completed", result
        assert set(result["output"]) == {"uri", "sha256"}

    async def test_seed_export_prints_the_link(self, harness, seaweed, bucket, s3):
        """`seed-export` against a service writing to the bucket prints the result with its
        download link, which fetches the output."""
        env = {
            **os.environ,
            "EXPORT_BOOTSTRAP_SERVERS": harness.settings.bootstrap_servers,
            "EXPORT_REQUEST_TOPIC": harness.settings.request_topic,
            "EXPORT_RESULT_TOPIC": harness.settings.result_topic,
        }
        async with harness.service(**s3):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "producer_tools.seed", "--records", "50",
                "--records-topic", harness.records_topic, "--export-id", "seeded", "--quiet",
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, err.decode()
        printed = orjson.loads(out)
        data = seaweed.read(bucket, f"{PREFIX}/seeded.csv")
        assert await asyncio.to_thread(download, printed["output"]["url"]) == data


class TestReplayAndConflict:
    async def test_replay_on_another_instance_is_answered_from_the_bucket(
        self, harness, seaweed, bucket, s3, tmp_path
    ):
        """The same request taken by a fresh instance with another (empty) directory is a
        replay: same sha256, `replayed: true`, a working link, still one object."""
        start, end = await harness.write_batches([ROWS])
        async with harness.service(**s3):
            await harness.send_request(harness.request("again", start, end))
            first = await harness.result("again")
        async with harness.service(**s3, output_dir=tmp_path / "elsewhere"):
            await harness.send_request(harness.request("again", start, end))
            second = await harness.result("again", nth=2)
        assert first["replayed"] is False
        assert second["status"] == "completed", second
        assert second["replayed"] is True
        assert second["output"]["sha256"] == first["output"]["sha256"]
        assert download(second["output"]["url"]) == download(first["output"]["url"])
        assert seaweed.outputs(bucket) == [f"{PREFIX}/again.csv"]

    async def test_a_different_request_under_the_same_id_is_a_conflict(
        self, harness, seaweed, bucket, s3
    ):
        """Another request reusing a stored export_id fails `conflict`; the object stays."""
        start, end = await harness.write_batches([ROWS])
        async with harness.service(**s3):
            await harness.send_request(harness.request("taken", start, end))
            first = await harness.result("taken")
            await harness.send_request(harness.request("taken", start, end, format="pdf"))
            second = await harness.result("taken", nth=2)
        assert first["status"] == "completed", first
        assert second["status"] == "failed"
        assert second["error"]["reason"] == "conflict"
        assert seaweed.outputs(bucket) == [f"{PREFIX}/taken.csv"]

    async def test_two_instances_racing_publish_one_object(
        self, harness, seaweed, bucket, s3, caplog
    ):
        """Two instances (two groups) export one request at once: one object is created, and
        the instance that loses the race answers as a replay of the winner's result."""
        caplog.set_level(logging.INFO, logger="consumer.runner")
        start, _ = await harness.write_batches([ROWS[0]])
        body = harness.request("raced", start, start + 3)  # two records still to come
        attempts = f"{PREFIX}/.exports/raced.attempts"
        async with harness.service(**s3), harness.service(**s3, group_id="g2"):
            await harness.send_request(body)
            # Both have claimed the export (and so looked for a manifest) and now wait for
            # the records: neither can answer as a replay before writing.
            for _ in range(300):
                claimed = attempts in seaweed.keys(bucket)
                if claimed and seaweed.read(bucket, attempts).strip() == b"2":
                    break
                await asyncio.sleep(0.05)
            else:
                pytest.fail("the two instances never both claimed the export")
            await harness.write_batches([ROWS[1], ROWS[2]])
            results = [await harness.result("raced"), await harness.result("raced", nth=2)]
        assert [r["status"] for r in results] == ["completed", "completed"], results
        assert sorted(r["replayed"] for r in results) == [False, True]
        assert results[0]["output"]["sha256"] == results[1]["output"]["sha256"]
        assert seaweed.outputs(bucket) == [f"{PREFIX}/raced.csv"]
        assert seaweed.read(bucket, f"{PREFIX}/raced.csv") == EXPECTED_CSV
        assert seaweed.uploads(bucket) == []
        # The loser's commit was refused (If-None-Match), not skipped by an early replay.
        assert [r for r in caplog.records if getattr(r, "event", None) == "output_taken"]

    @pytest.mark.parametrize("same_request", [True, False])
    async def test_an_output_whose_maker_died_before_its_manifest(
        self, harness, seaweed, bucket, s3, same_request
    ):
        """An object left without a manifest (its maker killed between the two) is answered
        as a replay of it when the same request made it, with its bytes' sha256 (and has a
        manifest from then on), or as a conflict when another request did."""
        start, end = await harness.write_batches([ROWS[:2], ROWS[2]])
        body = harness.request("orphan", start, end)
        fingerprint = decode_request(body).fingerprint if same_request else "0" * 64
        seaweed.client().put_object(
            Bucket=bucket,
            Key=f"{PREFIX}/orphan.csv",
            Body=EXPECTED_CSV,
            Metadata={"export-fingerprint": fingerprint},
        )
        async with harness.service(**s3):
            await harness.send_request(body)
            result = await harness.result("orphan")
            await harness.send_request(body)
            again = await harness.result("orphan", nth=2)
        assert seaweed.outputs(bucket) == [f"{PREFIX}/orphan.csv"]
        assert seaweed.read(bucket, f"{PREFIX}/orphan.csv") == EXPECTED_CSV
        assert seaweed.uploads(bucket) == []
        if not same_request:
            assert [r["error"]["reason"] for r in (result, again)] == ["conflict", "conflict"]
            return
        for answer in (result, again):
            assert answer["status"] == "completed", answer
            assert answer["replayed"] is True
            assert answer["records"] == 3
            assert answer["output"]["sha256"] == hashlib.sha256(EXPECTED_CSV).hexdigest()


class TestNothingHalfMade:
    async def test_a_failed_export_aborts_its_multipart_upload(self, harness, seaweed, bucket, s3):
        """An export that streamed parts and then failed (its deadline) leaves no object and no
        unfinished multipart upload."""
        padding = "x" * 200
        batches = [[{"id": i * 500 + j, "name": padding} for j in range(500)] for i in range(100)]
        start, end = await harness.write_batches(batches)  # about 10 MB of CSV
        body = harness.request("streamed", start, end + 5)  # five batches never come
        async with harness.service(**s3, timeout_s=15):
            await harness.send_request(body)
            # Parts go up while the export runs: the upload is there before it ends.
            for _ in range(100):
                if seaweed.uploads(bucket):
                    break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("no multipart upload began while the export ran")
            result = await harness.result("streamed")
        assert result["status"] == "failed"
        assert result["error"]["reason"] == "timeout"
        assert seaweed.outputs(bucket) == []
        assert seaweed.uploads(bucket) == []

    async def test_start_up_aborts_uploads_left_by_stopped_processes(
        self, harness, seaweed, bucket, s3, caplog
    ):
        """Uploads under the prefix older than the deadline plus grace are aborted once, with
        a log line; an upload outside the prefix is not the service's and stays."""
        caplog.set_level(logging.INFO, logger="consumer.storage.s3")
        client = seaweed.client()
        for key in (f"{PREFIX}/dead-1.csv", f"{PREFIX}/dead-2.pdf", "elsewhere/theirs.csv"):
            client.create_multipart_upload(Bucket=bucket, Key=key)
        await asyncio.sleep(2.5)  # older than the 1 s deadline + 0 s grace below
        async with harness.service(**s3, timeout_s=1, shutdown_grace_s=0):
            pass
        assert seaweed.uploads(bucket) == ["elsewhere/theirs.csv"]
        lines = [r for r in caplog.records if getattr(r, "event", None) == "stale_uploads_aborted"]
        assert [r.getMessage() for r in lines] == [
            "aborted 2 unfinished uploads left by stopped processes"
        ]


class TestStartUp:
    """A store that cannot be used stops `run` with one line naming it, exit status 2."""

    def _args(self, seaweed, tmp_path, url: str, *extra: str) -> list[str]:
        return [
            "run", "--bootstrap-servers", f"127.0.0.1:{free_port()}",
            "--output-dir", str(tmp_path / "out"), "--metrics-host", "127.0.0.1",
            "--metrics-port", "0", "--output-url", url,
            "--s3-endpoint-url", seaweed.endpoint_url, "--s3-access-key-id", ACCESS_KEY,
            "--s3-secret-access-key", SECRET_KEY, *extra,
        ]  # fmt: skip

    def test_a_bucket_that_does_not_exist(self, seaweed, tmp_path):
        """A missing bucket is named, with the endpoint and EXPORT_OUTPUT_URL."""
        line = one_line(run_cli(*self._args(seaweed, tmp_path, "s3://no-such-bucket/x")))
        assert "bucket 'no-such-bucket'" in line
        assert seaweed.endpoint_url in line
        assert "does not exist (EXPORT_OUTPUT_URL)" in line

    def test_refused_credentials(self, seaweed, bucket, tmp_path):
        """Credentials the store refuses are named as such, with the bucket."""
        args = self._args(seaweed, tmp_path, f"s3://{bucket}/x")
        line = one_line(run_cli(*args, "--s3-secret-access-key", "wrong"))
        assert f"bucket {bucket!r}" in line
        assert "refused the credentials" in line

    def test_an_endpoint_that_does_not_answer(self, seaweed, bucket, tmp_path):
        """An endpoint where nothing listens is named, with EXPORT_S3_ENDPOINT_URL."""
        nobody = f"http://127.0.0.1:{free_port()}"
        args = self._args(seaweed, tmp_path, f"s3://{bucket}/x")
        line = one_line(run_cli(*args, "--s3-endpoint-url", nobody))
        assert f"the endpoint {nobody} does not answer (EXPORT_S3_ENDPOINT_URL)" in line
