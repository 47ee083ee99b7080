"""ListOffsets asked again on the errors Kafka calls retriable and aiokafka reports as final."""

from __future__ import annotations

import pytest
from aiokafka.errors import UnknownError, UnknownTopicOrPartitionError

from consumer.source import range as source_range
from consumer.source.range import LIST_OFFSETS_TRIES, list_offsets


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(source_range, "LIST_OFFSETS_BACKOFF_S", 0.0)


def failing(times: int, error: Exception):
    """A ListOffsets call that fails `times` times with `error`, then answers."""
    calls = []

    async def request() -> dict[str, int]:
        calls.append(1)
        if len(calls) <= times:
            raise error
        return {"p0": 7}

    return request, calls


async def test_an_unknown_error_is_asked_again():
    """OFFSET_NOT_AVAILABLE (aiokafka: UnknownError) after a leader election passes."""
    request, calls = failing(2, UnknownError("p0"))
    assert await list_offsets(request) == {"p0": 7}
    assert len(calls) == 3


async def test_it_gives_up_after_its_tries():
    request, calls = failing(LIST_OFFSETS_TRIES, UnknownError("p0"))
    with pytest.raises(UnknownError):
        await list_offsets(request)
    assert len(calls) == LIST_OFFSETS_TRIES


async def test_other_errors_pass_through_at_once():
    """aiokafka already retries what it knows; the rest is the caller's to report."""
    request, calls = failing(1, UnknownTopicOrPartitionError("p0"))
    with pytest.raises(UnknownTopicOrPartitionError):
        await list_offsets(request)
    assert len(calls) == 1
