"""Typed, frozen shapes of what travels through the service; events.py maps them to JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from consumer.errors import FailureReason  # noqa: TC001 - dataclass field types are read at runtime

if TYPE_CHECKING:
    from collections.abc import Sequence


class ExportFormat(StrEnum):
    """Output formats; the value is also the file extension."""

    CSV = "csv"
    PDF = "pdf"
    JSONL = "jsonl"
    XLSX = "xlsx"
    PARQUET = "parquet"


class Compression(StrEnum):
    """`options.compression`: for the text formats (csv, jsonl) only."""

    NONE = "none"
    GZIP = "gzip"


COMPRESSIBLE = frozenset({ExportFormat.CSV, ExportFormat.JSONL})


class ColumnType(StrEnum):
    """A column's declared type; Parquet writes it, the other formats ignore it."""

    STRING = "string"
    INT64 = "int64"
    DOUBLE = "double"
    BOOL = "bool"
    TIMESTAMP = "timestamp"


@dataclass(frozen=True, slots=True)
class Column:
    """One output column: where its value is in a record and what heads it."""

    field: str
    """A record's key of this exact name, else a dotted path through nested objects."""
    label: str
    """The column's heading in every format (the field unless the request names one)."""
    type: ColumnType | None = None
    """Declared type, or None to take it from the values."""

    @classmethod
    def named(cls, field: str) -> Column:
        """The plain-name column of a v1 request: headed by its field."""
        return cls(field=field, label=field)


def as_columns(columns: Sequence[str | Column]) -> tuple[Column, ...]:
    """Columns from plain names or Column objects (plain names head themselves)."""
    return tuple(c if isinstance(c, Column) else Column.named(c) for c in columns)


class Orientation(StrEnum):
    """PDF page orientation; `auto` picks landscape when the columns need it."""

    AUTO = "auto"
    PORTRAIT = "portrait"
    LANDSCAPE = "landscape"


class ResultStatus(StrEnum):
    """The `status` of a result event."""

    COMPLETED = "completed"
    FAILED = "failed"
    RUNNING = "running"
    """A progress event; consumers that want outcomes only skip it."""


@dataclass(frozen=True, slots=True)
class SourceRange:
    """One partition's offset range that an export reads."""

    topic: str
    partition: int
    start_offset: int
    """First offset read (inclusive)."""
    end_offset: int
    """Offset the read stops at (exclusive)."""
    key: str | None = None
    """When set, only batches whose message key equals it count."""


@dataclass(frozen=True, slots=True)
class SourceWindow:
    """A time window of a topic: the records of every chosen partition whose Kafka
    timestamp is in [since, until), interleaved by timestamp."""

    topic: str
    since: str
    """As the request wrote it (RFC 3339 with a zone); `since_ms` is the same instant."""
    until: str
    since_ms: int
    """Milliseconds since the epoch, inclusive."""
    until_ms: int
    """Milliseconds since the epoch, exclusive."""
    partitions: tuple[int, ...] | None = None
    """The partitions to read; None for every partition of the topic."""
    key: str | None = None
    """When set, only batches whose message key equals it count."""


Source = SourceRange | SourceWindow
"""Where a request's records are: an offset range of one partition, or a time window."""


@dataclass(frozen=True, slots=True)
class PartitionRange:
    """The offsets of one partition that an export read."""

    partition: int
    start_offset: int
    end_offset: int


@dataclass(frozen=True, slots=True)
class ExportOptions:
    """Per-request knobs, with the contract's defaults."""

    delimiter: str = ","
    header: bool = True
    bom: bool = False
    """Write a UTF-8 byte order mark first, for Excel."""
    escape_formulas: bool = True
    """Prefix `'` to strings a spreadsheet would run as a formula."""
    rows_per_page: int = 50
    orientation: Orientation = Orientation.AUTO
    max_bad_records: int = 0
    """Bad records that may be skipped before the export fails."""
    compression: Compression = Compression.NONE


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """A validated export request."""

    export_id: str
    """Idempotency key and the output's file name."""
    format: ExportFormat
    columns: tuple[Column, ...]
    source: Source
    requested_by: str | None = None
    title: str | None = None
    options: ExportOptions = field(default_factory=ExportOptions)
    fingerprint: str = ""
    """Digest of everything that shapes the output; tells a replay from a conflict."""

    @property
    def fields(self) -> tuple[str, ...]:
        """Where each column's value is, in column order."""
        return tuple(c.field for c in self.columns)

    @property
    def labels(self) -> tuple[str, ...]:
        """Each column's heading, in column order."""
        return tuple(c.label for c in self.columns)


@dataclass(frozen=True, slots=True)
class OutputFile:
    """Where a completed export's file is and what it holds."""

    uri: str
    """`file:///...` or `s3://bucket/key`."""
    sha256: str
    url: str | None = None
    """A presigned download link (object storage), made afresh for every result event."""
    expires_at: str | None = None
    """When `url` stops working."""


@dataclass(frozen=True, slots=True)
class Failure:
    """Why an export failed."""

    reason: FailureReason
    message: str
    offset: int | None = None


@dataclass(frozen=True, slots=True)
class ExportResult:
    """The outcome published on the result topic."""

    export_id: str
    status: ResultStatus
    finished_at: str
    """UTC time, ISO 8601 with milliseconds and `Z`."""
    duration_ms: float
    format: ExportFormat | None = None
    """None only when the request was too broken to say."""
    source: Source | None = None
    ranges: tuple[PartitionRange, ...] = ()
    """What was read of each partition (what a window resolved to); empty when unknown."""
    records: int = 0
    bytes: int = 0
    skipped: int = 0
    output: OutputFile | None = None
    error: Failure | None = None
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class ExportProgress:
    """A `running` event: how far an export has got, published at most once a second."""

    export_id: str
    format: ExportFormat
    source: Source
    records: int
    """Records written so far."""
    percent: float
    """Share of the offset ranges read, 0 to 100."""
    elapsed_ms: float
    updated_at: str
    waiting_until: str | None = None
    """A window still open: the export waits until this time before reading."""
