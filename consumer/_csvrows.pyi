from typing import Any

def format_rows(
    records: list[dict[str, Any]],
    columns: tuple[str, ...],
    delimiter: str,
    escape_formulas: bool,
    /,
) -> bytes | None: ...
def format_json(
    text: bytes,
    columns: tuple[str, ...],
    delimiter: str,
    escape_formulas: bool,
    /,
) -> tuple[bytes, int] | None: ...
def format_jsonl(
    text: bytes,
    columns: tuple[str, ...],
    prefixes: tuple[bytes, ...],
    /,
) -> tuple[bytes, int] | None: ...
def batch_records(
    data: bytes | memoryview,
    pos: int,
    start: int,
    end: int,
    key: bytes | None,
    timestamps: bool,
    /,
) -> tuple[list[Any], int]: ...
def crc32c(data: bytes, hardware: bool, /) -> int: ...
