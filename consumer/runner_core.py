"""The per-fetch step of an export: decode, apply the bad-record rules, write.

Kept apart from the runner so CSV worker processes can import it without the Kafka
client, the PDF renderer or the schemas.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from consumer.batches import decode_batch
from consumer.errors import BadRecord

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from consumer.writers import Sink, Writer

log = logging.getLogger("consumer.runner")


class SourceMessage(Protocol):
    """What the loop needs of a source message: aiokafka's record, or a worker's copy."""

    @property
    def offset(self) -> int: ...

    @property
    def value(self) -> bytes | None: ...


@dataclass(slots=True)
class Tally:
    """Counts kept while an export runs."""

    records: int = 0
    skipped: int = 0


def log_skip(offset: int, problem: str) -> None:
    log.warning(
        "skipped bad record: %s", problem, extra={"event": "record_skipped", "offset": offset}
    )


def write_messages(
    writer: Writer,
    messages: Sequence[SourceMessage],
    tally: Tally,
    max_bad_records: int,
    max_batch_bytes: int,
    *,
    on_skip: Callable[[int, str], None] = log_skip,
) -> None:
    """Decode a fetch's messages and write their records (off the loop, or in a worker)."""
    for message in messages:
        batch = decode_batch(message.value, max_batch_bytes)
        if batch.bad:
            tally.skipped += batch.bad
            if tally.skipped > max_bad_records:
                raise BadRecord(
                    f"bad record at offset {message.offset}: {batch.problem} "
                    f"({tally.skipped} bad, max_bad_records is {max_bad_records})",
                    offset=message.offset,
                )
            on_skip(message.offset, batch.problem or "bad record")
        if batch.records:
            writer.write_records(batch.records)
            tally.records += len(batch.records)


class MessageWriter(Protocol):
    """What the export loop drives: whole fetches of source messages, the tally kept."""

    def begin(self, sink: Sink, tally: Tally) -> None: ...

    def write_messages(self, messages: Sequence[SourceMessage], tally: Tally) -> None: ...

    def finish(self, tally: Tally) -> None: ...

    def close(self) -> None: ...


class DecodingWriter:
    """A record `Writer` behind the message interface: decodes here, off the loop."""

    def __init__(self, writer: Writer, limits: tuple[int, int]) -> None:
        self._writer = writer
        self._limits = limits
        """(max_bad_records, max_batch_bytes)."""

    def begin(self, sink: Sink, tally: Tally) -> None:  # noqa: ARG002 - the protocol's
        self._writer.begin(sink)

    def write_messages(self, messages: Sequence[SourceMessage], tally: Tally) -> None:
        write_messages(self._writer, messages, tally, *self._limits)

    def finish(self, tally: Tally) -> None:  # noqa: ARG002 - the protocol's
        self._writer.finish()

    def close(self) -> None:
        self._writer.close()
