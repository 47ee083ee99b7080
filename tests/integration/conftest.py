from __future__ import annotations

import secrets

import pytest

from tests.integration.harness import Harness
from tests.seaweed import ACCESS_KEY, SECRET_KEY, SeaweedS3


@pytest.fixture
async def harness(broker, tmp_path):
    h = Harness(broker.bootstrap_servers, broker.idempotence, tmp_path)
    await h.start()
    yield h
    await h.stop()


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory):
    """A real S3-compatible server (SeaweedFS) for the whole session."""
    with SeaweedS3(tmp_path_factory.mktemp("seaweed")) as server:
        yield server


@pytest.fixture
def bucket(seaweed):
    """A new, empty bucket for one test."""
    name = f"exports-{secrets.token_hex(4)}"
    seaweed.create_bucket(name)
    return name


S3_PREFIX = "team/exports"


@pytest.fixture
def s3(seaweed, bucket):
    """Settings that send a service's outputs to the test's bucket, under S3_PREFIX."""
    return {
        "output_url": f"s3://{bucket}/{S3_PREFIX}",
        "s3_endpoint_url": seaweed.endpoint_url,
        "s3_access_key_id": ACCESS_KEY,
        "s3_secret_access_key": SECRET_KEY,
    }
