"""Reads a time window of a topic across its partitions, for one export.

Each chosen partition is resolved to an offset range with Kafka's time index
(ListOffsets by timestamp): from the first offset at or after `since` to the first at or
after `until`, or the partition's end when there is none. A window whose `until` is still
ahead is waited for first. The ranges are read with one group-less consumer that fetches only for
the partitions the merge is waiting on (so each runs ahead by one fetch), and
within them only messages whose timestamp is in the window (and whose key matches)
count; they leave interleaved by timestamp (`merge.py`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Self

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from consumer.errors import SourceUnavailable
from consumer.settings import WindowLookup
from consumer.source.merge import TimestampMerge
from consumer.source.range import (
    MIN_FETCH_BYTES,
    POLL_TIMEOUT_MS,
    connect,
    list_offsets,
    require_topic,
    source_consumer,
)
from consumer.structs import PartitionRange

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from types import TracebackType
    from typing import TypeAlias

    from aiokafka.structs import ConsumerRecord, OffsetAndTimestamp

    from consumer.settings import Settings
    from consumer.structs import SourceWindow

    Message: TypeAlias = ConsumerRecord[bytes, bytes]

log = logging.getLogger(__name__)

WINDOW_SHARES = 4
"""Partitions a window is assumed to read at once when it does not name them."""


class WindowReader:
    """`start()` checks the topic and partitions, waits for a window still open and
    resolves it to `ranges`; `batches()` yields the window's messages in merged order."""

    def __init__(
        self,
        settings: Settings,
        window: SourceWindow,
        fetch_bytes: int = MIN_FETCH_BYTES,
        on_wait: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._window = window
        self._on_wait = on_wait
        self._scan = settings.window_lookup is WindowLookup.SCAN
        # The export's fetch budget is shared by the partitions read at once: each holds
        # about a share in the merge and one more in flight; one fetch request may still
        # bring the whole budget (the shares of the partitions fetching).
        shares = len(window.partitions) if window.partitions is not None else WINDOW_SHARES
        self._share = max(MIN_FETCH_BYTES, fetch_bytes // shares)
        self._consumer = source_consumer(settings, fetch_bytes, self._share)
        self._started = False
        self.ranges: tuple[PartitionRange, ...] = ()
        """Each partition's resolved offsets, lowest partition first."""
        self._positions: dict[int, int] = {}

    async def start(self) -> None:
        await connect(self._consumer)
        self._started = True
        window = self._window
        try:
            partitions = await require_topic(self._consumer, window.topic)
            chosen = window.partitions if window.partitions is not None else sorted(partitions)
            missing = [p for p in chosen if p not in partitions]
            if missing:
                raise SourceUnavailable(
                    f"source.partitions: topic {window.topic!r} has no partition "
                    f"{', '.join(map(str, missing))} (it has {len(partitions)})"
                )
            await self._wait_for_until()
            self.ranges = await self._resolve(chosen)
        except KafkaError as exc:
            raise SourceUnavailable(f"cannot read the source's metadata: {exc}") from exc
        self._positions = {r.partition: r.start_offset for r in self.ranges}

    async def _wait_for_until(self) -> None:
        """A window still open is read once it has closed (the caller's deadline holds)."""
        ahead_s = self._window.until_ms / 1000 - time.time()
        if ahead_s <= 0:
            return
        log.info(
            "window still open: waiting %.1f s until %s",
            ahead_s,
            self._window.until,
            extra={"event": "window_waiting", "until": self._window.until},
        )
        if self._on_wait is not None:
            await self._on_wait()
        await asyncio.sleep(ahead_s)

    async def _resolve(self, partitions: list[int] | tuple[int, ...]) -> tuple[PartitionRange, ...]:
        topic, window = self._window.topic, self._window
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer = self._consumer
        ends = await list_offsets(lambda: consumer.end_offsets(tps))
        if self._scan:
            firsts = await list_offsets(lambda: consumer.beginning_offsets(tps))
            return tuple(PartitionRange(tp.partition, firsts[tp], ends[tp]) for tp in tps)
        since = dict.fromkeys(tps, window.since_ms)
        until = dict.fromkeys(tps, window.until_ms)
        starts = await list_offsets(lambda: consumer.offsets_for_times(since))
        stops = await list_offsets(lambda: consumer.offsets_for_times(until))
        ranges = []
        for tp in tps:
            end = _first_at(stops[tp], window.until_ms, ends[tp])
            start = _first_at(starts[tp], window.since_ms, end)
            ranges.append(PartitionRange(tp.partition, start, max(start, end)))
        return tuple(ranges)

    def read_offsets(self) -> tuple[int, int]:
        """(offsets read so far, offsets in every range together)."""
        done = sum(self._positions[r.partition] - r.start_offset for r in self.ranges)
        return done, sum(r.end_offset - r.start_offset for r in self.ranges)

    async def batches(self) -> AsyncIterator[list[Message]]:
        """The window's messages, merged by timestamp, a fetch (or quiet poll) at a time."""
        topic = self._window.topic
        reading = {r.partition: r for r in self.ranges if r.end_offset > r.start_offset}
        if not reading:
            return
        tps = {p: TopicPartition(topic, p) for p in reading}
        self._consumer.assign(list(tps.values()))
        for p, r in reading.items():
            self._consumer.seek(tps[p], r.start_offset)
        merge: TimestampMerge[Message] = TimestampMerge(sorted(reading))
        waiting = dict.fromkeys(reading, 0)
        """Bytes of each partition's messages waiting in the merge."""
        while not merge.done:
            live = [tps[p] for p in sorted(merge.live)]
            # A partition fetches while less than a share of it waits in the merge, so its
            # next fetch is in flight while the merge takes the last one, and no partition
            # runs more than a fetch ahead however far apart their timestamps are. Every
            # fetch that arrived is taken at once, because aiokafka sends a node no fetch
            # at all while any of its partitions' fetched records wait to be taken.
            fetching = {p for p in merge.live if waiting[p] < self._share}
            self._consumer.pause(*(tp for tp in live if tp.partition not in fetching))
            self._consumer.resume(*(tp for tp in live if tp.partition in fetching))
            try:
                fetched = await self._consumer.getmany(*live, timeout_ms=POLL_TIMEOUT_MS)
            except KafkaError as exc:
                raise SourceUnavailable(f"source: reading {topic} failed: {exc}") from exc
            for tp, messages in fetched.items():
                chosen = self._in_window(messages, reading[tp.partition])
                waiting[tp.partition] += sum(len(m.value or b"") for m in chosen)
                merge.add(tp.partition, chosen)
            for tp in live:
                if tp.partition in fetching or tp in fetched:
                    await self._advance(tp, reading[tp.partition], merge)
            out = merge.take()
            for message in out:
                waiting[message.partition] -= len(message.value or b"")
            # Empty too: the runner hears that the source is quiet.
            yield out

    def _in_window(self, messages: list[Message], span: PartitionRange) -> list[Message]:
        """The messages of the partition's range whose timestamp (and key) count."""
        window = self._window
        key = window.key.encode() if window.key is not None else None
        chosen = []
        for message in messages:
            if message.offset >= span.end_offset:
                break
            if window.since_ms <= message.timestamp < window.until_ms and (
                key is None or message.key == key
            ):
                chosen.append(message)
        return chosen

    async def _advance(
        self, tp: TopicPartition, span: PartitionRange, merge: TimestampMerge[Message]
    ) -> None:
        """Note how far the partition is read; at its range's end it is done."""
        position = min(span.end_offset, await self._consumer.position(tp))
        self._positions[tp.partition] = position
        if position >= span.end_offset:
            merge.finish(tp.partition)
            self._consumer.pause(tp)  # nothing past the range is wanted

    async def stop(self) -> None:
        """Close the connection; safe to call twice."""
        if self._started:
            self._started = False
            await self._consumer.stop()

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def _first_at(found: OffsetAndTimestamp | None, asked_ms: int, otherwise: int) -> int:
    """The offset of ListOffsets' answer, or `otherwise` when there is no record at or
    after `asked_ms`. An answer stamped before the time asked is no answer: the embedded
    broker (Tansu) says offset 0 with timestamp -1 where Kafka says none."""
    if found is None or found.timestamp < asked_ms:
        return otherwise
    return int(found.offset)
