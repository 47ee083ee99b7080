"""Progress of a running export, reported at most once a second."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from consumer.events import utc_timestamp
from consumer.structs import ExportProgress

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from consumer.structs import ExportRequest

    ProgressSink = Callable[[ExportProgress], Awaitable[None]]

INTERVAL_S = 1.0


class ProgressReporter:
    """Turns (records written, read position) into `running` events, throttled.

    The first event comes one interval after the start, so short exports send none;
    none comes once the whole range is read, as the outcome is next (and records still
    being formatted would make a 100 % event with fewer records than the result); none
    repeats the last one while an export waits for records not yet written (a broker
    outage would otherwise pile them up in the producer).
    """

    def __init__(self, request: ExportRequest, started: float, sink: ProgressSink | None) -> None:
        self._request = request
        self._started = started
        self._sink = sink
        self._next_at = started + INTERVAL_S
        self._last: tuple[int, int] | None = None

    async def update(self, records: int, position: int) -> None:
        now = time.monotonic()
        src = self._request.source
        if self._sink is None or now < self._next_at or position >= src.end_offset:
            return
        if (records, position) == self._last:
            return
        self._last = (records, position)
        self._next_at = now + INTERVAL_S
        span = src.end_offset - src.start_offset
        done = min(max(position - src.start_offset, 0), span)
        await self._sink(
            ExportProgress(
                export_id=self._request.export_id,
                format=self._request.format,
                source=src,
                records=records,
                percent=100.0 * done / span if span else 100.0,
                elapsed_ms=(now - self._started) * 1000,
                updated_at=utc_timestamp(),
            )
        )
