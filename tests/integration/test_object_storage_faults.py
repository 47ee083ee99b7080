"""A struggling object store, through a proxy in front of the real one: throttling is
retried with backoff, a bounded number of times; an outage fails the running export
`write_error` naming the endpoint, and the service goes on once the store is back."""

from __future__ import annotations

import asyncio

import pytest

from consumer.storage.s3_bucket import MAX_ATTEMPTS
from tests.flaky_proxy import FlakyProxy
from tests.integration.conftest import S3_PREFIX

ROWS = [{"id": 1, "name": "one", "amount": 1}, {"id": 2, "name": "two", "amount": 2}]


@pytest.fixture
async def proxy(seaweed):
    async with FlakyProxy(seaweed.ports["s3.port"]) as flaky:
        yield flaky


@pytest.fixture
def via_proxy(s3, proxy):
    """The s3 settings, with the endpoint behind the proxy."""
    return {**s3, "s3_endpoint_url": proxy.url}


async def test_throttling_is_retried_and_the_export_completes(
    harness, seaweed, bucket, proxy, via_proxy
):
    """A store that answers 503 SlowDown a few times is asked again, and the export
    completes as if nothing happened."""
    start, end = await harness.write_batches([ROWS])
    async with harness.service(**via_proxy):
        proxy.throttle_next = 3
        await harness.send_request(harness.request("patient", start, end))
        result = await harness.result("patient")
    assert result["status"] == "completed", result
    assert proxy.throttled == 3
    assert seaweed.outputs(bucket) == [f"{S3_PREFIX}/patient.csv"]


async def test_retries_are_bounded_then_write_error_and_the_service_goes_on(
    harness, seaweed, bucket, proxy, via_proxy
):
    """A store that keeps answering 503 is tried a bounded number of times; the export fails
    `write_error` naming the endpoint, nothing is visible, and the next export succeeds once
    the store answers again."""
    start, end = await harness.write_batches([ROWS])
    async with harness.service(**via_proxy):
        proxy.throttle_next = 10**6
        await harness.send_request(harness.request("refused", start, end))
        result = await harness.result("refused")
        tried = proxy.throttled
        proxy.throttle_next = 0
        await harness.send_request(harness.request("after", start, end))
        after = await harness.result("after")
    assert result["status"] == "failed"
    assert result["error"]["reason"] == "write_error"
    assert proxy.url in result["error"]["message"]
    assert "503" in result["error"]["message"]
    # The export's first request (its attempt count) was tried MAX_ATTEMPTS times, no more.
    assert tried == MAX_ATTEMPTS
    assert after["status"] == "completed", after
    assert seaweed.outputs(bucket) == [f"{S3_PREFIX}/after.csv"]


async def test_a_store_that_stops_answering_mid_export(harness, seaweed, bucket, proxy, via_proxy):
    """The store goes away while an export waits for its last records: the export fails
    `write_error` naming the endpoint, no object appears, and once the store is back the
    service exports again."""
    start, _ = await harness.write_batches([ROWS[:1]])
    async with harness.service(**via_proxy) as service:
        await harness.send_request(harness.request("stranded", start, start + 2))
        while service.limiter.running == 0:  # noqa: ASYNC110 - the service's own state
            await asyncio.sleep(0.05)
        await proxy.stop()
        await harness.write_batches([ROWS[1:]])
        result = await harness.result("stranded", wait_s=90)
        await proxy.start()
        start, end = await harness.write_batches([ROWS])
        await harness.send_request(harness.request("after", start, end))
        after = await harness.result("after")
    assert result["status"] == "failed", result
    assert result["error"]["reason"] == "write_error"
    assert proxy.url in result["error"]["message"]
    assert after["status"] == "completed", after
    assert seaweed.outputs(bucket) == [f"{S3_PREFIX}/after.csv"]
