"""Full and read-only output directories, and source data that is wrong in every way we know."""

from __future__ import annotations

import contextlib
import os
import subprocess
from typing import TYPE_CHECKING, Any

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from tests.integration.harness import Harness, output_of

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

AS_ROOT = os.geteuid() == 0


def rows(first: int, count: int) -> list[dict[str, Any]]:
    return [{"id": first + i, "name": f"name {first + i}", "amount": i} for i in range(count)]


@contextlib.contextmanager
def mounted(path: Path, *options: str) -> Iterator[None]:
    """A real mount (root only): a tiny tmpfs, or the directory bound read-only."""
    path.mkdir(parents=True, exist_ok=True)
    if "ro" in options:
        commands = [["mount", "--bind", str(path), str(path)],
                    ["mount", "-o", "remount,ro,bind", str(path)]]  # fmt: skip
    else:
        commands = [["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(path)]]
    for command in commands:
        subprocess.run(command, check=True, timeout=30)
    try:
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True, timeout=30)


def visible(harness: Harness) -> list[str]:
    return sorted(p.name for p in harness.output_dir.iterdir() if not p.name.startswith("."))


def parts(harness: Harness) -> list[str]:
    return sorted(p.name for p in harness.output_dir.glob(".*.part"))


@pytest.mark.skipif(not AS_ROOT, reason="a full disk needs a tmpfs mount, which needs root")
async def test_full_disk_fails_write_error_and_the_next_export_still_runs(harness):
    big = await harness.write_batches([rows(i, 1000) for i in range(0, 20_000, 1000)])
    small = await harness.write_batches([rows(0, 5)])
    with mounted(harness.output_dir, "size=256k"):
        async with harness.service():
            await harness.send_request(harness.request("too-big", *big))
            failed = await harness.result("too-big")
            await harness.send_request(harness.request("fits", *small))
            fits = await harness.result("fits")
        assert failed["status"] == "failed"
        assert failed["error"]["reason"] == "write_error", failed["error"]
        assert "too-big.csv" in failed["error"]["message"]
        assert "No space left on device" in failed["error"]["message"]
        assert fits["status"] == "completed"
        assert visible(harness) == ["fits.csv"]  # nothing partial of too-big anywhere
        assert parts(harness) == []


async def test_read_only_output_fails_write_error_then_recovers(harness, tmp_path):
    rows_range = await harness.write_batches([rows(0, 5)])
    out = harness.output_dir
    out.mkdir(parents=True, exist_ok=True)
    async with harness.service():
        if AS_ROOT:
            guard: contextlib.AbstractContextManager[None] = mounted(out, "ro")
        else:
            out.chmod(0o555)
            guard = contextlib.nullcontext()
        try:
            with guard:
                await harness.send_request(harness.request("ro-1", *rows_range))
                failed = await harness.result("ro-1")
        finally:
            out.chmod(0o755)
        await harness.send_request(harness.request("rw-1", *rows_range))
        ok = await harness.result("rw-1")
    assert failed["status"] == "failed"
    assert failed["error"]["reason"] == "write_error", failed["error"]
    assert "output directory" in failed["error"]["message"]
    assert ok["status"] == "completed"
    assert visible(harness) == ["rw-1.csv"]


async def test_source_problems_fail_with_the_reason_and_offset(harness):
    """Over-large, too deeply nested and non-object batches: `bad_record` at their offset."""
    good = rows(0, 3)
    nested = b"[" * 5000 + b"]" * 5000  # past the JSON decoder's depth limit
    # Under Kafka's default 1 MB message limit, over the service's limit set below.
    big = orjson.dumps([{"id": 1, "name": "x" * 300_000, "amount": 1}])
    start, _ = await harness.write_batches([good, nested, good, b'"a string"', good, big, good])
    cases = {
        "deep": (start, start + 3, start + 1, "not JSON"),
        "scalar": (start + 2, start + 5, start + 3, "JSON str, not an object"),
        "oversized": (start + 4, start + 7, start + 5, "over the limit of 65,536"),
    }
    async with harness.service(max_batch_bytes=64 * 1024):
        for export_id, (first, end, _, _) in cases.items():
            await harness.send_request(harness.request(export_id, first, end))
        results = {export_id: await harness.result(export_id) for export_id in cases}
        # The same ranges with room for one bad record: skipped, counted, the rest written.
        for export_id, (first, end, _, _) in cases.items():
            body = harness.request(f"{export_id}-skip", first, end, options={"max_bad_records": 1})
            await harness.send_request(body)
        skipped = {export_id: await harness.result(f"{export_id}-skip") for export_id in cases}
    for export_id, (_, _, bad_offset, words) in cases.items():
        failed = results[export_id]
        assert failed["status"] == "failed", export_id
        assert failed["error"]["reason"] == "bad_record", export_id
        assert failed["error"]["offset"] == bad_offset, export_id
        assert f"offset {bad_offset}" in failed["error"]["message"], export_id
        assert words in failed["error"]["message"], export_id
        done = skipped[export_id]
        assert (done["status"], done["records"], done["skipped"]) == ("completed", 6, 1), export_id
        assert len(output_of(done).read_text().splitlines()) == 7, export_id
    assert parts(harness) == []


def deep_record(depth: int, key: str = "amount") -> bytes:
    """One record whose `key` holds arrays nested `depth` deep around 1E5 and -0."""
    value = b"[" * depth + b"1E5,-0" + b"]" * depth
    return b'{"id": 1, "name": "n", "%s": %s}' % (key.encode(), value)


async def test_deeply_nested_values_are_written_or_bad_records(harness):
    """Values 254, 255 and 1022 levels deep are written whole (in CSV and PDF), as is one
    in a key no column asks for; one 1024 deep (past what the decoder reads, in its
    record) is a bad record at its offset that says it is nested too deep, and skippable."""
    depths = [254, 255, 1022, 1024]
    batches = [deep_record(d) for d in depths] + [deep_record(1022, key="x")]
    start, end = await harness.write_batches(batches)
    too_deep = start + 3
    async with harness.service():
        await harness.send_request(harness.request("deep-fail", start, end))
        options = {"max_bad_records": 1}
        await harness.send_request(harness.request("deep-skip", start, end, options=options))
        await harness.send_request(harness.request("deep-pdf", start, too_deep, format="pdf"))
        failed = await harness.result("deep-fail")
        skipped = await harness.result("deep-skip")
        pdf = await harness.result("deep-pdf")
    assert failed["status"] == "failed"
    assert failed["error"]["reason"] == "bad_record"
    assert failed["error"]["offset"] == too_deep
    words = f"bad record at offset {too_deep}: message is not JSON: nested more than 1,024 levels"
    assert words in failed["error"]["message"]
    assert (skipped["status"], skipped["records"], skipped["skipped"]) == ("completed", 4, 1)
    written = [b'1,n,"' + b"[" * d + b"1E5,-0" + b"]" * d + b'"' for d in depths[:3]]
    expected = [b"id,name,amount", *written, b"1,n,", b""]
    assert output_of(skipped).read_bytes().split(b"\r\n") == expected
    assert (pdf["status"], pdf["records"]) == ("completed", 3)


async def test_huge_values_print_whole_in_csv_and_cut_in_pdf(harness):
    huge = "é" * 400_000  # 800 KB of UTF-8 in one cell, under Kafka's default message limit
    deep: Any = "bottom"
    for _ in range(200):
        deep = {"down": deep}
    start, end = await harness.write_batches([[{"id": 1, "name": huge, "amount": deep}]])
    async with harness.service():
        await harness.send_request(harness.request("huge-csv", start, end))
        await harness.send_request(harness.request("huge-pdf", start, end, format="pdf"))
        csv_result = await harness.result("huge-csv")
        pdf_result = await harness.result("huge-pdf")
    assert csv_result["status"] == "completed"
    text = output_of(csv_result).read_text(encoding="utf-8")
    assert huge in text
    assert text.count('""down""') == 200  # the nested object, as JSON text in one cell
    assert pdf_result["status"] == "completed"
    assert pdf_result["bytes"] < 200_000  # the cell was cut to the column, not printed whole


@pytest.mark.needs_delete_records
async def test_a_range_before_the_log_start_is_source_unavailable(harness):
    """Retention deleted the range's start: `source_unavailable` naming the offsets.

    Runs on Apache Kafka (the default test broker) or EXPORT_TEST_BOOTSTRAP; the embedded
    Tansu has no DeleteRecords, so `needs_delete_records` deselects it there.
    """
    start, end = await harness.write_batches([rows(i, 1) for i in range(6)])
    tp = TopicPartition(harness.records_topic, 0)
    admin = AIOKafkaAdminClient(bootstrap_servers=harness.settings.bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_records({tp: RecordsToDelete(before_offset=start + 3)})
    finally:
        await admin.close()
    async with harness.service():
        await harness.send_request(harness.request("expired", start, end))
        result = await harness.result("expired")
    assert result["status"] == "failed"
    assert result["error"]["reason"] == "source_unavailable"
    assert f"{start} is before the log's start {start + 3}" in result["error"]["message"]
