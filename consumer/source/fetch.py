"""Fetches of one partition's record batches as the broker sends them, undecoded.

The lanes read the records out of the batches (`consumer.record_batches`), so the service
only moves bytes: aiokafka's consumer built a Python object per record here, most of the
service's CPU time in a large export. The consumer's connection, metadata and retries are
aiokafka's; the fetch request and the walk over batch headers are ours.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiokafka import errors
from aiokafka.protocol.fetch import FetchRequest

from consumer.errors import SourceUnavailable
from consumer.record_batches import LOG_OVERHEAD

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, TopicPartition

log = logging.getLogger(__name__)

READ_UNCOMMITTED = 0
"""As aiokafka's consumer reads by default: aborted transactions' records are read too."""
RETRY_S = 0.1
"""Pause before asking again after a leader change or while a broker is away."""
V2 = 2
"""The message format of record batches (Kafka 0.11 on)."""
MAGIC_AT = 16
"""The message format's version (the magic byte), after the base offset and length."""
LAST_OFFSET_DELTA_AT = 23
"""A v2 batch's last offset, less its base, after the magic, the CRC and the attributes."""
_BATCH_START = struct.Struct(">qi")
_LAST_OFFSET_DELTA = struct.Struct(">i")
_AWAY = (errors.KafkaConnectionError, errors.NodeNotReadyError, errors.RequestTimedOutError)


@dataclass(frozen=True, slots=True)
class FetchedBatches:
    """One fetch's whole record batches, end to end."""

    data: bytes
    """The fetch's bytes; whole batches up to `ends[-1]`, then perhaps part of one."""
    ends: tuple[int, ...]
    """Where each whole batch ends in `data`."""
    next_offset: int | None = None
    """The offset after the last whole batch (None when there is none)."""


def whole_batches(data: bytes) -> tuple[tuple[int, ...], int | None]:
    """Where each whole batch at the start of `data` ends (a fetch may stop inside the
    last one), and the offset after the last of them (None when there is none)."""
    ends: list[int] = []
    next_offset = None
    pos = 0
    size = len(data)
    while size - pos > MAGIC_AT:
        base, length = _BATCH_START.unpack_from(data, pos)
        end = pos + LOG_OVERHEAD + length
        if length < 0 or end > size:
            break
        if data[pos + MAGIC_AT] >= V2 and end >= pos + LAST_OFFSET_DELTA_AT + 4:
            delta = _LAST_OFFSET_DELTA.unpack_from(data, pos + LAST_OFFSET_DELTA_AT)[0]
            next_offset = base + delta + 1  # v2 keeps it when compaction removed the record
        else:  # an older message set's entry: one message (a compressed one's last offset)
            next_offset = base + 1
        ends.append(end)
        pos = end
    return tuple(ends), next_offset


class BatchFetcher:
    """Fetch requests for one partition, sent through a started consumer's client."""

    def __init__(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, fetch_bytes: int, max_wait_ms: int
    ) -> None:
        self._client = consumer._client  # noqa: SLF001 - its connections and metadata
        self._tp = tp
        self._fetch_bytes = fetch_bytes
        self._max_wait_ms = max_wait_ms

    async def fetch(self, position: int) -> FetchedBatches:
        """The partition's whole batches from `position`: none when nothing is written
        there yet (within the wait); `source_unavailable` when the broker sent only part of
        a batch larger than the fetch, which no later fetch would get past."""
        data = await self._fetch_bytes_at(position)
        ends, next_offset = whole_batches(data)
        if next_offset is None and data:
            tp = self._tp
            raise SourceUnavailable(
                f"source: the record batch at offset {position} of {tp.topic}[{tp.partition}] "
                f"is larger than a fetch ({self._fetch_bytes:,} bytes), and the broker sent "
                "part of it",
                offset=position,
            )
        return FetchedBatches(data, ends, next_offset)

    async def _fetch_bytes_at(self, position: int) -> bytes:
        """The partition's bytes from `position`. A leader change or a broker that is away
        is waited out, as the consumer waits it out, within the caller's deadline."""
        tp = self._tp
        request = FetchRequest(
            self._max_wait_ms,
            1,
            self._fetch_bytes,
            READ_UNCOMMITTED,
            [(tp.topic, [(tp.partition, position, self._fetch_bytes)])],
        )
        while True:
            node = self._client.cluster.leader_for_partition(tp)
            if node is None or node < 0:
                await self._refresh(f"no leader known for {tp.topic}[{tp.partition}]")
                continue
            try:
                response = await self._client.send(node, request)
            except _AWAY as exc:
                await self._refresh(f"broker {node} away: {exc}")
                continue
            try:
                ((_topic, partitions),) = response.topics
                ((_partition, error_code, _highwater, *part_data),) = partitions
            except ValueError:
                await self._refresh("fetch answered without the partition")
                continue
            error = errors.for_code(error_code)
            if error is errors.NoError:
                records: bytes | None = part_data[-1]
                return records or b""
            if not error.retriable:
                raise SourceUnavailable(
                    f"source: reading {tp.topic}[{tp.partition}] at offset {position} "
                    f"failed: {error.__name__}",
                    offset=position,
                )
            await self._refresh(f"fetch answered {error.__name__}")

    async def _refresh(self, why: str) -> None:
        log.debug("source fetch: %s; asking again", why)
        await self._client.force_metadata_update()
        await asyncio.sleep(RETRY_S)
