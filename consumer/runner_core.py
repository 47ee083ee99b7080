"""The per-fetch step of an export: decode, apply the bad-record rules, write.

Kept apart from the runner so CSV worker processes can import it without the Kafka
client, the PDF renderer or the schemas.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Protocol

from consumer.batches import decode_batch
from consumer.errors import BadRecord
from consumer.limits import RECORDS_SETTING, too_many_records

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


class Tally:
    """Counts kept while an export runs; counting past `max_records` raises `TooLarge`,
    whichever writer counts (every format's records are counted here)."""

    __slots__ = ("_records", "limited_by", "max_records", "skipped")

    def __init__(
        self,
        records: int = 0,
        skipped: int = 0,
        max_records: int | None = None,
        limited_by: str = RECORDS_SETTING,
    ) -> None:
        self._records = records
        self.skipped = skipped
        self.max_records = max_records
        """`EXPORT_MAX_RECORDS` (or less, for a workbook) in the service; None in a worker,
        which only reports counts."""
        self.limited_by = limited_by
        """What sets `max_records`, for the failure's message."""

    @property
    def records(self) -> int:
        """Records written so far."""
        return self._records

    @records.setter
    def records(self, value: int) -> None:
        if self.max_records is not None and value > self.max_records:
            raise too_many_records(self.max_records, self.limited_by)
        self._records = value


def log_skip(offset: int, problem: str) -> None:
    log.warning(
        "skipped bad record: %s", problem, extra={"event": "record_skipped", "offset": offset}
    )


def skip_bad(tally: Tally, max_bad_records: int, offset: int, problem: str, count: int) -> None:
    """Count a message's bad records: past the limit the export fails at its offset,
    below it the skip is logged."""
    tally.skipped += count
    if tally.skipped > max_bad_records:
        raise BadRecord(
            f"bad record at offset {offset}: {problem} "
            f"({tally.skipped} bad, max_bad_records is {max_bad_records})",
            offset=offset,
        )
    log_skip(offset, problem)


def write_messages(
    writer: Writer,
    messages: Sequence[SourceMessage],
    tally: Tally,
    max_batch_bytes: int,
    on_bad: Callable[[int, str, int], None],
) -> None:
    """Decode a fetch's messages and write their records (off the loop, or in a worker);
    `on_bad(offset, problem, count)` hears of each message with bad records."""
    for message in messages:
        batch = decode_batch(message.value, max_batch_bytes)
        if batch.bad:
            on_bad(message.offset, batch.problem or "bad record", batch.bad)
        if batch.records:
            rejected = writer.write_records(batch.records)
            if rejected is not None:
                on_bad(message.offset, rejected.problem, rejected.records)
            tally.records += len(batch.records) - (rejected.records if rejected else 0)


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
        max_bad_records, max_batch_bytes = self._limits
        on_bad = functools.partial(skip_bad, tally, max_bad_records)
        write_messages(self._writer, messages, tally, max_batch_bytes, on_bad)

    def finish(self, tally: Tally) -> None:  # noqa: ARG002 - the protocol's
        self._writer.finish()

    def close(self) -> None:
        self._writer.close()
