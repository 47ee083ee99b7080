"""Where an export's records come from: one partition's offset range (`range.py`), or a
time window across partitions (`window.py`, merged by timestamp in `merge.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Self

from consumer.source.range import MIN_FETCH_BYTES, SourceReader, fetch_bytes_for
from consumer.source.window import WindowReader
from consumer.structs import SourceRange

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
    from types import TracebackType

    from consumer.runner_core import SourceMessage
    from consumer.settings import Settings
    from consumer.structs import PartitionRange, Source

__all__ = [
    "MIN_FETCH_BYTES",
    "Reader",
    "SourceReader",
    "WindowReader",
    "fetch_bytes_for",
    "reader_for",
]


class Reader(Protocol):
    """What the runner reads a source through."""

    @property
    def ranges(self) -> tuple[PartitionRange, ...]: ...

    def read_offsets(self) -> tuple[int, int]: ...

    def batches(self) -> AsyncGenerator[Sequence[SourceMessage], None]: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def reader_for(
    settings: Settings,
    source: Source,
    fetch_bytes: int,
    on_wait: Callable[[], Awaitable[None]] | None = None,
) -> Reader:
    """The reader of an offset range or of a time window."""
    if isinstance(source, SourceRange):
        return SourceReader(settings, source, fetch_bytes)
    return WindowReader(settings, source, fetch_bytes, on_wait)
