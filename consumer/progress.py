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

    async def update(self, records: int, read: tuple[int, int]) -> None:
        """`read`: (offsets read so far, offsets to read), over every range together."""
        now = time.monotonic()
        done, span = read
        if self._sink is None or now < self._next_at or done >= span:
            return
        if (records, done) == self._last:
            return
        self._last = (records, done)
        self._next_at = now + INTERVAL_S
        await self._publish(records, 100.0 * done / span if span else 100.0, None)

    async def waiting(self) -> None:
        """Said once: the export waits for its window to close before reading."""
        source = self._request.source
        until = getattr(source, "until", None)
        await self._publish(0, 0.0, until)

    async def _publish(self, records: int, percent: float, waiting_until: str | None) -> None:
        if self._sink is None:
            return
        await self._sink(
            ExportProgress(
                export_id=self._request.export_id,
                format=self._request.format,
                source=self._request.source,
                records=records,
                percent=percent,
                elapsed_ms=(time.monotonic() - self._started) * 1000,
                updated_at=utc_timestamp(),
                waiting_until=waiting_until,
            )
        )
