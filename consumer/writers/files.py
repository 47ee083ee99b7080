"""What a lane needs to write one export's file, and the writer for each format."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from consumer.structs import Column, Compression, ExportFormat, ExportOptions, as_columns

if TYPE_CHECKING:
    from collections.abc import Sequence

    from consumer.writers import Writer

SPLITTABLE = frozenset({ExportFormat.CSV, ExportFormat.JSONL})
"""Formats whose file is its records' pieces end to end: several lanes may write one."""


@dataclass(frozen=True, slots=True)
class FileInfo:
    """What a file says about the export that made it (a workbook's properties, a Parquet
    file's key-value metadata)."""

    export_id: str = ""
    title: str = ""
    source: str = ""
    """The source as compact JSON, as the result event shows it."""


@dataclass(frozen=True, slots=True)
class FileSpec:
    """One export's file: its format, columns and options, and what it says of itself."""

    format: ExportFormat
    columns: tuple[Column, ...]
    options: ExportOptions = field(default_factory=ExportOptions)
    info: FileInfo = field(default_factory=FileInfo)

    @classmethod
    def of(
        cls,
        fmt: ExportFormat,
        columns: Sequence[str | Column],
        options: ExportOptions | None = None,
        info: FileInfo | None = None,
    ) -> FileSpec:
        return cls(fmt, as_columns(columns), options or ExportOptions(), info or FileInfo())

    @property
    def splittable(self) -> bool:
        return self.format in SPLITTABLE

    @property
    def gzip(self) -> bool:
        return self.options.compression is Compression.GZIP


def open_writer(spec: FileSpec) -> Writer:
    """The format's writer; imported here so a lane loads only the library it uses."""
    if spec.format is ExportFormat.CSV:
        from consumer.writers.csv import CsvWriter  # noqa: PLC0415

        return CsvWriter(spec.columns, spec.options)
    if spec.format is ExportFormat.JSONL:
        from consumer.writers.jsonl import JsonlWriter  # noqa: PLC0415

        return JsonlWriter(spec.columns)
    if spec.format is ExportFormat.PARQUET:
        from consumer.writers.parquet import ParquetFileWriter  # noqa: PLC0415

        return ParquetFileWriter(spec.columns, spec.info)
    if spec.format is ExportFormat.XLSX:
        from consumer.writers.xlsx import XlsxWriter  # noqa: PLC0415

        return XlsxWriter(spec.columns, spec.info)
    raise ValueError(f"no lane writer for {spec.format.value}")
