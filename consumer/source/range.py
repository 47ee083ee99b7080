"""Reads the record batches of one partition's offset range, for one export."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Self, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError, UnknownError

from consumer.errors import SourceUnavailable
from consumer.source.fetch import BatchFetcher
from consumer.structs import PartitionRange
from consumer.topic_access import unavailable
from consumer.topics import topic_partitions

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable
    from types import TracebackType

    from aiokafka.structs import ConsumerRecord

    from consumer.settings import Settings
    from consumer.source.fetch import FetchedBatches
    from consumer.structs import SourceRange

log = logging.getLogger(__name__)

POLL_TIMEOUT_MS = 500
FETCH_BUDGET_BYTES = 4 * 1024 * 1024
"""Fetch memory shared by the exports that run at once: a lone export reads 4 MiB a
fetch (fewer round trips: 1,000,000 records took 1.3 s instead of 2.0 s at 512 KiB),
five read 512 KiB to 1 MiB each, so memory stays flat as exports are added."""
MIN_FETCH_BYTES = 512 * 1024
RECONNECT_S = 1.0
"""Pause between attempts to reach a broker that was away when an export started."""
LIST_OFFSETS_TRIES = 5
LIST_OFFSETS_BACKOFF_S = 0.2

T = TypeVar("T")


def fetch_bytes_for(exports: int) -> int:
    """One export's fetch size when `exports` run or wait on this instance."""
    return max(MIN_FETCH_BYTES, FETCH_BUDGET_BYTES // max(exports, 1))


def source_consumer(
    settings: Settings, fetch_bytes: int, partition_bytes: int | None = None
) -> AIOKafkaConsumer:
    """A group-less consumer whose fetches hold at most `fetch_bytes`, and of one
    partition at most `partition_bytes` (default: all of it)."""
    return AIOKafkaConsumer(
        **settings.kafka_client_options(),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="none",
        # The most of the partition one fetch holds in memory (Kafka still sends a
        # first batch that is larger whole).
        max_partition_fetch_bytes=partition_bytes or fetch_bytes,
        fetch_max_bytes=fetch_bytes,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
    )


async def connect(consumer: AIOKafkaConsumer) -> None:
    """Start the consumer; a broker that is merely away (down, restarting) is waited for,
    within the caller's deadline."""
    while True:
        try:
            await consumer.start()
        except KafkaConnectionError as exc:
            log.debug("source: broker unreachable, retrying: %s", exc)
            await asyncio.sleep(RECONNECT_S)
        else:
            return


async def list_offsets(request: Callable[[], Awaitable[T]]) -> T:
    """A ListOffsets call, asked again a few times when it fails with an error Kafka calls
    retriable but aiokafka does not know (OFFSET_NOT_AVAILABLE just after a partition's
    leader is chosen, FENCED or UNKNOWN_LEADER_EPOCH): aiokafka reports those as a final
    UnknownError, which would fail a fresh topic's export for a moment's state."""
    for attempt in range(1, LIST_OFFSETS_TRIES):
        try:
            return await request()
        except UnknownError as exc:
            log.debug("ListOffsets failed (%s), asking again", exc)
            await asyncio.sleep(LIST_OFFSETS_BACKOFF_S * attempt)
    return await request()  # the last try: its error is the caller's


async def require_topic(consumer: AIOKafkaConsumer, topic: str) -> frozenset[int]:
    """The topic's partitions; `source_unavailable` (the message a refused topic gets) when
    it does not exist."""
    partitions = await topic_partitions(consumer, topic)
    if partitions is None:
        log.info("source topic %r does not exist", topic, extra={"event": "source_missing"})
        raise unavailable(topic)
    # The client's own metadata learns the topic's leaders now: its first ListOffsets would
    # otherwise find none, refresh and retry after `retry_backoff_ms` (100 ms, most of a
    # small export's time). Asked only once the topic is known to exist: a request naming
    # a topic creates it on brokers that auto-create topics.
    await consumer._client.add_topic(topic)  # noqa: SLF001 - no public way to wait for it
    return partitions


class SourceReader:
    """A group-less consumer assigned to the range's partition.

    `start()` checks that the topic, the partition and the range's start exist;
    `batches()` yields messages in offset order until the reader's position reaches
    `end_offset` (offsets may be missing after compaction or at transaction markers),
    waiting for records not yet written. The caller's deadline bounds the wait.
    """

    def __init__(
        self, settings: Settings, source: SourceRange, fetch_bytes: int = MIN_FETCH_BYTES
    ) -> None:
        self._source = source
        self._tp = TopicPartition(source.topic, source.partition)
        self._consumer = source_consumer(settings, fetch_bytes)
        self._fetch_bytes = fetch_bytes
        self._max_wait_ms = settings.fetch_max_wait_ms
        self._started = False
        self.position = source.start_offset
        """The next offset to read; reaches `end_offset` when the range is done."""

    async def start(self) -> None:
        """Connect, then check the source. A broker that is merely away (down, restarting)
        is waited for, as `batches()` waits for it, within the caller's deadline."""
        await connect(self._consumer)
        self._started = True
        await self._check_source()

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

    async def _check_source(self) -> None:
        src = self._source
        try:
            partitions = await require_topic(self._consumer, src.topic)
            if src.partition not in partitions:
                raise SourceUnavailable(
                    f"source.partition: topic {src.topic!r} has no partition {src.partition} "
                    f"(it has {len(partitions)})"
                )
            if src.end_offset > src.start_offset:
                firsts = await list_offsets(lambda: self._consumer.beginning_offsets([self._tp]))
                first = firsts[self._tp]
                if src.start_offset < first:
                    raise SourceUnavailable(
                        f"source.start_offset: {src.start_offset} is before the log's start "
                        f"{first} of {src.topic}[{src.partition}] (deleted by retention)"
                    )
        except KafkaError as exc:
            raise SourceUnavailable(f"cannot read the source's metadata: {exc}") from exc

    @property
    def source(self) -> SourceRange:
        """The range requested."""
        return self._source

    @property
    def ranges(self) -> tuple[PartitionRange, ...]:
        """What this reader reads: the requested range."""
        src = self._source
        return (PartitionRange(src.partition, src.start_offset, src.end_offset),)

    def read_offsets(self) -> tuple[int, int]:
        """(offsets read so far, offsets in the range)."""
        src = self._source
        span = src.end_offset - src.start_offset
        return min(max(self.position - src.start_offset, 0), span), span

    async def batches(self) -> AsyncGenerator[list[ConsumerRecord[bytes, bytes]], None]:
        """Messages of the range that match the key, a fetch (or quiet poll) at a time."""
        src = self._source
        if src.end_offset <= src.start_offset:
            return
        key = src.key.encode() if src.key is not None else None
        self._consumer.assign([self._tp])
        self._consumer.seek(self._tp, src.start_offset)
        while self.position < src.end_offset:
            try:
                fetched = await self._consumer.getmany(self._tp, timeout_ms=POLL_TIMEOUT_MS)
            except KafkaError as exc:
                # Out of range (retention overtook the read) and the like; a broker that is
                # merely away makes getmany wait instead, within the export's deadline.
                raise SourceUnavailable(
                    f"source: reading {src.topic}[{src.partition}] at offset {self.position} "
                    f"failed: {exc}",
                    offset=self.position,
                ) from exc
            messages = fetched.get(self._tp, [])
            chosen = []
            for message in messages:
                if message.offset >= src.end_offset:
                    self.position = src.end_offset
                    break
                if key is None or message.key == key:
                    chosen.append(message)
            else:
                self.position = max(self.position, await self._consumer.position(self._tp))
            # Empty too: the runner hears that the source is quiet (a poll timed out, or
            # no message matched the key) and can bring its counts up to date.
            yield chosen

    async def fetched_batches(self) -> AsyncGenerator[FetchedBatches, None]:
        """The range's record batches as the broker sends them, a fetch at a time, for the
        lanes to read (`consumer.record_batches`): the batches that hold the range, whose
        records outside it (and of other keys) the reader leaves out. Each fetch is asked
        for before the last one is handed on, so the broker works meanwhile. An empty one
        when nothing came for a poll's time: the source is quiet."""
        src = self._source
        if src.end_offset <= src.start_offset:
            return
        fetcher = BatchFetcher(self._consumer, self._tp, self._fetch_bytes, self._max_wait_ms)
        pending = asyncio.ensure_future(fetcher.fetch(self.position))
        quiet_since = time.monotonic()
        try:
            while self.position < src.end_offset:
                fetched = await pending
                if fetched.next_offset is not None:
                    self.position = min(max(self.position, fetched.next_offset), src.end_offset)
                if self.position < src.end_offset:
                    pending = asyncio.ensure_future(fetcher.fetch(self.position))
                if fetched.ends or time.monotonic() - quiet_since >= POLL_TIMEOUT_MS / 1000:
                    quiet_since = time.monotonic()
                    yield fetched
        finally:
            # A fetch not waited for is of no interest now (nor its error, if it failed).
            if not pending.cancel() and not pending.cancelled():
                pending.exception()
