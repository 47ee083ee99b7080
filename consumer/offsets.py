"""Which request offsets may be committed when exports finish out of order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiokafka import TopicPartition


@dataclass(slots=True)
class _PartitionOffsets:
    pending: set[int] = field(default_factory=set)
    """Offsets received whose result is not yet acknowledged."""
    next_offset: int | None = None
    """One past the highest offset received."""
    committed: int | None = None
    """The last offset committed (or handed out for commit)."""


class OffsetTracker:
    """Per partition: the offset below which every request has its result published.

    The commit position never passes an unfinished request, so a crash redelivers
    everything whose result might be missing. A revoked partition is forgotten, so a
    late acknowledgement cannot commit an offset another member now owns.
    """

    def __init__(self) -> None:
        self._partitions: dict[TopicPartition, _PartitionOffsets] = {}

    def received(self, tp: TopicPartition, offset: int) -> None:
        state = self._partitions.setdefault(tp, _PartitionOffsets())
        state.pending.add(offset)
        state.next_offset = max(state.next_offset or 0, offset + 1)

    def finished(self, tp: TopicPartition, offset: int) -> None:
        """The result for this offset is acknowledged; ignored for a forgotten partition."""
        state = self._partitions.get(tp)
        if state is not None:
            state.pending.discard(offset)

    def forget(self, tp: TopicPartition) -> None:
        self._partitions.pop(tp, None)

    def pending(self, tp: TopicPartition) -> set[int]:
        state = self._partitions.get(tp)
        return set(state.pending) if state else set()

    def committable(self) -> dict[TopicPartition, int]:
        """Commit positions that moved since the last call (Kafka's: next offset to read)."""
        out: dict[TopicPartition, int] = {}
        for tp, state in self._partitions.items():
            if state.next_offset is None:
                continue
            position = min(state.pending) if state.pending else state.next_offset
            if state.committed is None or position > state.committed:
                out[tp] = position
        return out

    def mark_committed(self, positions: dict[TopicPartition, int]) -> None:
        for tp, position in positions.items():
            state = self._partitions.get(tp)
            if state is not None:
                state.committed = position
