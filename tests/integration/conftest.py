from __future__ import annotations

import pytest

from tests.integration.harness import Harness


@pytest.fixture
async def harness(broker, tmp_path):
    h = Harness(broker.bootstrap_servers, broker.idempotence, tmp_path)
    await h.start()
    yield h
    await h.stop()
