"""At most N exports at once; tells the consumer loop when to stop fetching."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


class ExportLimiter:
    """A semaphore that also counts who waits, so the loop can pause before a queue grows.

    `admitted()` counts requests handed over and not yet done (running plus waiting);
    the loop pauses fetching while it is at `capacity`.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._slots = asyncio.Semaphore(capacity)
        self.running = 0
        self.waiting = 0

    @property
    def full(self) -> bool:
        return self.running + self.waiting >= self.capacity

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
