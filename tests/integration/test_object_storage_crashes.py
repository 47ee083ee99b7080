"""kill -9 with outputs in object storage: nothing half-made stays, the crash-loop limit
holds, both from what is in the bucket alone."""

from __future__ import annotations

import functools
from typing import Any

from tests.integration.conftest import S3_PREFIX
from tests.integration.processes import ServiceProcess, wait_until

PADDING = "p" * 240


def rows(first: int, count: int) -> list[dict[str, Any]]:
    return [{"id": first + i, "name": PADDING, "amount": i} for i in range(count)]


def attempts_are(seaweed, bucket: str, export_id: str, count: int) -> bool:
    key = f"{S3_PREFIX}/.exports/{export_id}.attempts"
    return key in seaweed.keys(bucket) and seaweed.read(bucket, key).strip() == str(count).encode()


async def test_kill_9_mid_upload_then_restart_completes_it_once(harness, seaweed, bucket, s3):
    """Killed with parts uploaded: no object appears; the restarted service makes the output
    once, whole, and the dead attempt's unfinished upload is aborted."""
    service = ServiceProcess(harness, "crashy", **s3)
    try:
        await service.start()
        # About 11 MB of CSV exists (more than a part); two more batches are still to come.
        start, end = await harness.write_batches([rows(i * 3000, 3000) for i in range(14)])
        await harness.send_request(harness.request("victim", start, end + 2))
        key = f"{S3_PREFIX}/victim.csv"
        await wait_until(lambda: key in seaweed.uploads(bucket))
        service.kill()
        assert seaweed.outputs(bucket) == []
        await harness.write_batches([rows(42_000, 5), rows(42_005, 5)])
        await service.start()
        result = await harness.result("victim")
    finally:
        service.stop()
    assert result["status"] == "completed", result
    assert result["records"] == 42_010
    lines = seaweed.read(bucket, key).decode().splitlines()
    assert len(lines) == 42_011  # the header and every record, once
    assert lines[-1].startswith("42009,")
    assert seaweed.outputs(bucket) == [key]
    assert seaweed.uploads(bucket) == []
    assert len(service.events("export_started", "victim")) == 2


async def test_a_request_that_kills_the_service_is_failed_on_its_fourth_delivery(
    harness, seaweed, bucket, s3
):
    """Three deliveries die mid-export, counted in the bucket; the fourth fails it with
    `internal` instead of dying again, and the service goes on."""
    service = ServiceProcess(harness, "looping", **s3)
    try:
        start, _ = await harness.write_batches([rows(0, 1)])
        for attempt in range(1, 4):
            await service.start()
            if attempt == 1:
                await harness.send_request(harness.request("poison", start, start + 3))
            await service.wait_for_log("export_started", "poison", count=attempt)
            await wait_until(functools.partial(attempts_are, seaweed, bucket, "poison", attempt))
            service.kill()
        await service.start()
        result = await harness.result("poison")
        assert result["status"] == "failed"
        assert result["error"]["reason"] == "internal"
        assert "died during each of the last 3 attempts" in result["error"]["message"]
        after = harness.request("after", *await harness.write_batches([rows(1, 3)]))
        await harness.send_request(after)
        assert (await harness.result("after"))["status"] == "completed"
    finally:
        service.stop()
    assert seaweed.outputs(bucket) == [f"{S3_PREFIX}/after.csv"]
    # The failed attempt ended alive: the count is gone, so a later delivery tries again.
    assert not [key for key in seaweed.keys(bucket) if key.endswith(".attempts")]
