"""The export limiter: what counts against `EXPORT_MAX_IN_FLIGHT`."""

from __future__ import annotations

from consumer.limiter import ExportLimiter


async def test_an_export_counts_until_its_result_is_acknowledged():
    """An export that has run keeps its place until its result is acknowledged, so fetching
    stays paused while the broker cannot acknowledge results."""
    limiter = ExportLimiter(1)
    limiter.admit()
    assert limiter.full
    async with limiter.slot():
        assert (limiter.running, limiter.waiting) == (1, 0)
        limiter.ran()
    assert limiter.running == 0
    assert limiter.full
    limiter.acknowledged()
    assert not limiter.full
