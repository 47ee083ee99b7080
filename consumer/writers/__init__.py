"""Writers turn records into the bytes of one output format."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence


class Sink(Protocol):
    """Where a writer puts its bytes (the store's staged file)."""

    def write(self, data: bytes | memoryview) -> int: ...


class Rejected(NamedTuple):
    """Records of a batch a writer could not take (a value that does not fit its column)."""

    records: int
    problem: str
    """What was wrong with the first of them."""


class Writer(Protocol):
    """Streams records, batch by batch, into a sink; holds no more than one batch
    (a format that groups rows, like Parquet, holds one group)."""

    def begin(self, sink: Sink) -> None:
        """Write what comes before the first record (BOM, header)."""

    def write_records(self, records: Sequence[dict[str, Any]]) -> Rejected | None:
        """Write one batch of records as rows; what it could not take is left out and told."""

    def finish(self) -> None:
        """Write what comes after the last record."""

    def close(self) -> None:
        """Release what the writer holds; called after finish() or instead of it."""


class TextFastPath(Protocol):
    """A writer that can write a message's records straight from its JSON text."""

    def write_json(self, text: bytes) -> int | None:
        """How many records were written, or None when the text needs decoding first."""
