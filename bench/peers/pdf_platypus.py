"""The PDF peer: what a user would write with reportlab's platypus, fed from memory.

One `Table` a page of 50 rows, with a grid and a header row, a page break between them;
a small font and tight padding so that each table fits its A4 page (a split table would
make the peer do twice the pages).
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.platypus import PageBreak, SimpleDocTemplate, Table, TableStyle

if TYPE_CHECKING:
    from collections.abc import Sequence

    from reportlab.platypus import Flowable

ROWS_PER_PAGE = 50
STYLE = TableStyle(
    [
        ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
        ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
        ("FONTSIZE", (0, 0), (-1, -1), 7),
        ("LEADING", (0, 0), (-1, -1), 8.5),
        ("TOPPADDING", (0, 0), (-1, -1), 1),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
    ]
)


def render(records: Sequence[dict[str, Any]], columns: Sequence[str]) -> bytes:
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=A4, topMargin=36, bottomMargin=36)
    story: list[Flowable] = []
    for start in range(0, len(records), ROWS_PER_PAGE):
        rows = [
            [str(r.get(c, "")) for c in columns] for r in records[start : start + ROWS_PER_PAGE]
        ]
        table = Table([list(columns), *rows], repeatRows=1)
        table.setStyle(STYLE)
        story += [table, PageBreak()]
    doc.build(story)
    return buffer.getvalue()


def main() -> None:
    """`python -m bench.peers.pdf_platypus N`: render N generated records from memory in this
    process; prints its seconds, the PDF's bytes and the process's peak resident MB."""
    import orjson  # noqa: PLC0415 - only the command needs them

    from producer_tools.records import COLUMNS, generate  # noqa: PLC0415

    data = generate(int(sys.argv[1]))
    started = time.perf_counter()
    size = len(render(data, COLUMNS))
    seconds = time.perf_counter() - started
    # VmHWM: this process's own peak (ru_maxrss carries the parent's over exec).
    peak_kb = next(
        int(line.split()[1])
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("VmHWM:")
    )
    sys.stdout.write(
        orjson.dumps({"seconds": seconds, "bytes": size, "peak_mb": peak_kb / 1024}).decode()
    )


if __name__ == "__main__":
    main()
