"""What an output file is called and what it is: its extension and its media type."""

from __future__ import annotations

from dataclasses import dataclass

from consumer.structs import Compression, ExportFormat

_MEDIA_TYPES = {
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.PDF: "application/pdf",
    ExportFormat.JSONL: "application/jsonl; charset=utf-8",
    ExportFormat.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ExportFormat.PARQUET: "application/vnd.apache.parquet",
}
GZIP_MEDIA_TYPE = "application/gzip"
"""Not `Content-Encoding: gzip`: a browser would unpack it and save a `.csv.gz` of plain text."""


@dataclass(frozen=True, slots=True)
class OutputType:
    """`csv`, `csv.gz`, `xlsx`...: the file name's extension and the object's Content-Type."""

    extension: str
    media_type: str

    @classmethod
    def of(cls, fmt: ExportFormat, compression: Compression = Compression.NONE) -> OutputType:
        if compression is Compression.GZIP:
            return cls(f"{fmt.value}.gz", GZIP_MEDIA_TYPE)
        return cls(fmt.value, _MEDIA_TYPES[fmt])


EXTENSIONS = tuple(
    sorted(
        {OutputType.of(f, c).extension for f in ExportFormat for c in Compression},
        key=len,
        reverse=True,
    )
)
"""Every extension an output may have, longest first (`csv.gz` before `gz`-less `csv`)."""
