"""How large one export may grow: `EXPORT_MAX_RECORDS` and `EXPORT_MAX_OUTPUT_BYTES`.

Enforced where every format passes, so a new format gets them for free: records are
counted by the export's `Tally` (`consumer.runner_core`), bytes by the `BoundedSink`
between every writer and the store. Passing either raises `TooLarge`; the runner then
leaves the staged output uncommitted, which removes the file or aborts the upload.

Kept free of the settings and Kafka imports: CSV worker processes import the tally.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from consumer.errors import TooLarge

if TYPE_CHECKING:
    from consumer.writers import Sink

RECORDS_SETTING = "EXPORT_MAX_RECORDS"
BYTES_SETTING = "EXPORT_MAX_OUTPUT_BYTES"
XLSX_MAX_RECORDS = 1_048_575
"""A worksheet's 1,048,576 rows, less the heading."""
XLSX_LIMIT = "a worksheet's 1,048,576 rows (one is the heading)"


def too_many_records(limit: int, limited_by: str = RECORDS_SETTING) -> TooLarge:
    """The failure of an export that passed `limit` records."""
    return TooLarge(f"the export passed {limit:,} records, the limit set by {limited_by}")


def check_range_length(length: int, limit: int) -> None:
    """Fail before reading a source whose offsets alone are more than `limit` records (with
    or without a key: reading the range costs as much either way)."""
    if length > limit:
        raise TooLarge(
            f"the source range holds {length:,} offsets, more than the {limit:,} records "
            f"{RECORDS_SETTING} allows an export; ask for a shorter range"
        )


class BoundedSink:
    """A sink that passes bytes on until they would pass `limit`, then raises `TooLarge`
    (before writing the bytes that pass it)."""

    __slots__ = ("_limit", "_sink", "bytes_written")

    def __init__(self, sink: Sink, limit: int) -> None:
        self._sink = sink
        self._limit = limit
        self.bytes_written = 0
        """Bytes passed on so far."""

    def write(self, data: bytes | memoryview) -> int:
        if self.bytes_written + len(data) > self._limit:
            raise TooLarge(
                f"the output passed {self._limit:,} bytes, the limit set by {BYTES_SETTING}"
            )
        self.bytes_written += len(data)
        return self._sink.write(data)
