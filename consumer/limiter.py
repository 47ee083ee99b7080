"""At most N exports at once; tells the consumer loop when to stop fetching."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


class ExportLimiter:
    """A semaphore that also counts who waits, so the loop can pause before a queue grows.

    Requests handed over and not yet done (waiting, running, or run with their result not
    yet acknowledged) count against `capacity`; the loop pauses fetching while they fill it,
    so a broker that cannot acknowledge results stops the fetching too.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._slots = asyncio.Semaphore(capacity)
        self.running = 0
        self.waiting = 0
        self.unacknowledged = 0
        """Exports run whose result is not yet acknowledged (they hold no slot)."""

    @property
    def taken(self) -> int:
        return self.running + self.waiting + self.unacknowledged

    @property
    def full(self) -> bool:
        return self.taken >= self.capacity

    def ran(self) -> None:
        """An export has run (call it before giving up its slot): its result is pending."""
        self.unacknowledged += 1

    def acknowledged(self) -> None:
        """The result of an export counted by `ran()` is acknowledged (or given up on)."""
        self.unacknowledged -= 1

    def admit(self) -> None:
        """Count a request as received before it asks for a slot."""
        self.waiting += 1

    def withdraw(self) -> None:
        """A request admitted but done without needing a slot (replays, invalid ones)."""
        self.waiting -= 1

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for a free slot (after `admit()`), hold it for the export."""
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._slots.release()
