from typing import Any

def format_rows(
    records: list[dict[str, Any]],
    columns: tuple[str, ...],
    delimiter: str,
    escape_formulas: bool,
    /,
) -> bytes | None: ...
