"""Reads a time window of a topic across its partitions, for one export.

Each chosen partition is resolved to an offset range with Kafka's time index
(ListOffsets by timestamp): from the first offset at or after `since` to the first at or
after `until`, or the partition's end when there is none. A window whose `until` is still
ahead is waited for first. The ranges are fetched undecoded (`fetch.py`) through one
group-less consumer's connections, only for the partitions the merge is waiting on (so each
runs ahead by one fetch), read here in C (`consumer.record_batches`), and within them only
messages whose timestamp is in the window (and whose key matches) count; they leave
interleaved by timestamp (`merge.py`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, NamedTuple, Self

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from consumer.errors import SourceUnavailable
from consumer.record_batches import stamped_messages
from consumer.settings import WindowLookup
from consumer.source.fetch import BatchFetcher, FetchedBatches
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
    from collections.abc import AsyncGenerator, Awaitable, Callable
    from types import TracebackType

    from aiokafka.structs import OffsetAndTimestamp

    from consumer.settings import Settings
    from consumer.structs import SourceWindow

log = logging.getLogger(__name__)

WINDOW_SHARES = 4
"""Partitions a window is assumed to read at once when it does not name them."""


class WindowMessage(NamedTuple):
    """A message of the window, read out of its fetched batch here."""

    partition: int
    offset: int
    timestamp: int
    value: bytes | None


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
        # Twice the export's fetch budget is shared by the partitions read at once: each
        # holds about a share in the merge and one more in flight. (Each partition's fetch is
        # a request of its own; at a quarter of the budget each, a window over 4 partitions
        # took 1.10x the time of the same records' range, at half of it 0.97x.)
        shares = len(window.partitions) if window.partitions is not None else WINDOW_SHARES
        self._share = max(MIN_FETCH_BYTES, 2 * fetch_bytes // shares)
        self._consumer = source_consumer(settings, fetch_bytes, self._share)
        self._max_wait_ms = settings.fetch_max_wait_ms
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

    async def batches(self) -> AsyncGenerator[list[WindowMessage], None]:
        """The window's messages, merged by timestamp, as the merge lets them leave (an
        empty list when no fetch came for a poll's time: the source is quiet)."""
        reading = {r.partition: r for r in self.ranges if r.end_offset > r.start_offset}
        if not reading:
            return
        topic = self._window.topic
        fetchers = {
            p: BatchFetcher(
                self._consumer, TopicPartition(topic, p), self._share, self._max_wait_ms
            )
            for p in reading
        }
        merge: TimestampMerge[WindowMessage] = TimestampMerge(sorted(reading))
        waiting = dict.fromkeys(reading, 0)
        """Bytes of each partition's messages waiting in the merge."""
        pending: dict[int, asyncio.Task[FetchedBatches]] = {}
        try:
            while not merge.done:
                # A partition fetches while less than a share of it waits in the merge, so
                # its next fetch is in flight while the merge takes the last one, and none
                # runs more than a fetch ahead however far apart their timestamps are.
                for p in merge.live - pending.keys():
                    if waiting[p] < self._share:
                        pending[p] = asyncio.ensure_future(fetchers[p].fetch(self._positions[p]))
                arrived, _ = await asyncio.wait(
                    pending.values(),
                    timeout=POLL_TIMEOUT_MS / 1000,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for p in [p for p, task in pending.items() if task.done()]:
                    chosen = self._take_fetch(p, pending.pop(p).result(), reading[p], merge)
                    waiting[p] += sum(len(m.value or b"") for m in chosen)
                out = merge.take()
                for message in out:
                    waiting[message.partition] -= len(message.value or b"")
                if out or not arrived:  # empty: nothing came for a poll's time
                    yield out
        finally:
            for task in pending.values():  # fetches not waited for are of no interest now
                if not task.cancel() and not task.cancelled():
                    task.exception()

    def _take_fetch(
        self,
        partition: int,
        fetched: FetchedBatches,
        span: PartitionRange,
        merge: TimestampMerge[WindowMessage],
    ) -> list[WindowMessage]:
        """A partition's fetch into the merge: its messages in the window (and of the key);
        at its range's end the partition is done."""
        position = self._positions[partition]
        chosen: list[WindowMessage] = []
        if fetched.ends:
            window = self._window
            key = window.key.encode() if window.key is not None else None
            records = stamped_messages(
                fetched.data[: fetched.ends[-1]], position, span.end_offset, key
            )
            chosen = [
                WindowMessage(partition, offset, timestamp, value)
                for offset, timestamp, value in records
                if window.since_ms <= timestamp < window.until_ms
            ]
            merge.add(partition, chosen)
        if fetched.next_offset is not None:
            position = min(max(position, fetched.next_offset), span.end_offset)
            self._positions[partition] = position
        if position >= span.end_offset:
            merge.finish(partition)
        return chosen

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
