"""Interleaves the records of several partitions by timestamp, each in its own order.

A k-way merge over the partitions' heads: a record leaves only when every partition still
being read has a record waiting (or is done), so the order never depends on how the
fetches happened to arrive. Ties go to the lower partition. Each partition's records come
out in offset order, so the whole is in timestamp order wherever a partition's timestamps
rise with its offsets (always under LogAppendTime).
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Generic, Protocol, TypeVar


class Stamped(Protocol):
    """What the merge needs of a record: its Kafka timestamp (ms)."""

    @property
    def timestamp(self) -> int: ...


R = TypeVar("R", bound=Stamped)


class TimestampMerge(Generic[R]):
    """Feed each partition's records in offset order (`add`), say when one has no more
    (`finish`); `take` returns what can leave now."""

    def __init__(self, partitions: list[int]) -> None:
        self._waiting: dict[int, deque[R]] = {p: deque() for p in partitions}
        self._live = set(partitions)
        """Partitions that may still get records."""
        self._heads: list[tuple[int, int]] = []
        """(timestamp, partition) of each partition's first waiting record."""
        self._starving = len(self._live)
        """Live partitions with nothing waiting: while any, nothing can leave."""

    def add(self, partition: int, records: list[R]) -> None:
        if not records:
            return
        queue = self._waiting[partition]
        if not queue:
            heapq.heappush(self._heads, (records[0].timestamp, partition))
            if partition in self._live:
                self._starving -= 1
        queue.extend(records)

    def finish(self, partition: int) -> None:
        if partition in self._live:
            self._live.discard(partition)
            if not self._waiting[partition]:
                self._starving -= 1

    @property
    def live(self) -> frozenset[int]:
        """Partitions that may still get records."""
        return frozenset(self._live)

    def hungry(self) -> list[int]:
        """Partitions being read that have nothing waiting: the merge waits on them."""
        return [p for p in self._live if not self._waiting[p]]

    @property
    def done(self) -> bool:
        return not self._live and not self._heads

    def take(self) -> list[R]:
        """Every record that can leave now, in merged order."""
        out: list[R] = []
        heads, waiting = self._heads, self._waiting
        # While a partition still being read has nothing waiting, it might hold something
        # earlier than every head.
        while heads and not self._starving:
            partition = heapq.heappop(heads)[1]
            queue = waiting[partition]
            out.append(queue.popleft())
            if queue:
                heapq.heappush(heads, (queue[0].timestamp, partition))
            elif partition in self._live:
                self._starving += 1
        return out
