"""How late the event loop wakes: the measure of whether anything blocks it."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import Histogram

INTERVAL_S = 0.1


async def watch_loop_lag(histogram: Histogram, interval_s: float = INTERVAL_S) -> None:
    """Sleep `interval_s` again and again; observe how much later than asked each wake is."""
    while True:
        asked = time.monotonic()
        await asyncio.sleep(interval_s)
        histogram.observe(max(0.0, time.monotonic() - asked - interval_s))
