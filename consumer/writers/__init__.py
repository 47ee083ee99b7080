"""Writers turn records into the bytes of one output format."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence


class Sink(Protocol):
    """Where a writer puts its bytes (the store's staged file)."""

    def write(self, data: bytes) -> int: ...


class Writer(Protocol):
    """Streams records, batch by batch, into a sink; holds no more than one batch."""

    def begin(self, sink: Sink) -> None:
        """Write what comes before the first record (BOM, header)."""

    def write_records(self, records: Sequence[dict[str, Any]]) -> None:
        """Write one batch of records as rows."""

    def finish(self) -> None:
        """Write what comes after the last record."""

    def close(self) -> None:
        """Release what the writer holds; called after finish() or instead of it."""
