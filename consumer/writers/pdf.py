"""PDF reports drawn straight onto a reportlab canvas, page by page as records arrive.

The table is laid out once, from the header and the first batch: column widths follow
the measured text, long cells are cut with an ellipsis, `auto` orientation turns the page
when the columns need it. Every page repeats the header row and says "Page n of m";
m is a form drawn once at the end and referenced from every page.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.rl_accel import fp_str
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.pdfdoc import PDFDictionary, PDFName, PDFStream
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas
from reportlab.pdfgen.textobject import PDFTextObject
from zlib_ng import zlib_ng

from consumer.errors import InvalidRequest, TooLarge
from consumer.fields import lookup
from consumer.structs import Orientation, as_columns
from consumer.writers.cells import cell_text
from consumer.writers.pdf_fonts import BOLD, REGULAR

if TYPE_CHECKING:
    from collections.abc import Sequence

    from consumer.structs import Column, ExportOptions

MARGIN = 36.0
TITLE_BLOCK = 44.0
FOOTER_BLOCK = 22.0
CELL_PAD = 3.0
BODY_FONT = 8.0
MIN_FONT = 6.0
MAX_ROW_H = 16.0
MIN_COL_W = 2 * CELL_PAD + 4 * MIN_FONT * 0.6  # room for about three letters and "…"
SAMPLE_ROWS = 200
ELLIPSIS = "…"
HEADER_BG = (0.20, 0.27, 0.36)
STRIPE_BG = (0.93, 0.95, 0.97)
RULE = (0.80, 0.83, 0.87)
MUTED = (0.35, 0.38, 0.42)
TOTAL_FORM = "page_total"
CACHE_LIMIT = 4_000
"""Entries kept in each per-report cache before it is emptied, so memory stays bounded."""

FormatCache = dict[tuple[str, float, int, str], tuple[str, int]]
OriginCache = dict[tuple[float, float], str]
_PDF_ESCAPES = str.maketrans({"\\": "\\\\", "(": "\\(", ")": "\\)"})


def _compress_last_page(canvas: Canvas) -> None:
    """Deflate the page just finished now instead of at save().

    reportlab keeps each page's drawing operators as text until the document is saved,
    which for a 2,000-page report is hundreds of megabytes; compressed they are a
    tenth of that. A stream that already names its filter is written as it is.
    """
    page = canvas._doc.Pages.pages[-1]  # noqa: SLF001 - no public handle on finished pages
    if page.stream:
        content = zlib_ng.compress(page.stream.encode("utf-8"), 6)
        page.Contents = PDFStream(
            PDFDictionary({"Filter": PDFName("FlateDecode")}), content, filters=[]
        )
        page.stream = None


class CellText(PDFTextObject):  # type: ignore[misc] # reportlab ships no types
    """A text object that places each cell at its own origin, with cached text operators.

    reportlab encodes every string for the font's subsets on each call, which is most of
    a report's drawing time; the result depends only on the font, the size, the subset
    selected before and the text, so it is kept per report (`cache`) and reused. Cells
    are placed absolutely, so the cursor tracking that `textOut` pays for is not needed.
    """

    _code: list[str]
    _curSubset: int  # noqa: N815 - reportlab's name
    _fontname: str
    _fontsize: float
    _canvas: Canvas

    def __init__(self, canvas: Canvas, cache: FormatCache, origins: OriginCache) -> None:
        super().__init__(canvas)
        self._cache = cache
        self._origins = origins
        self._ascii: dict[str, bool] = {}

    def cell(self, x: float, y: float, text: str) -> None:
        # Rows sit at the same heights on every page and most columns start at the same
        # x, so the few distinct origins are formatted once, not once a cell.
        origin = self._origins.get((x, y))
        if origin is None:
            origin = self._origins[x, y] = f"1 0 0 1 {fp_str(x, y)} Tm"
        self._code.append(origin)
        key = (self._fontname, self._fontsize, self._curSubset, text)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = self._encode(text)
        self._code.append(hit[0])
        self._curSubset = hit[1]

    def _encode(self, text: str) -> tuple[str, int]:
        """The text's operators and the subset selected after them.

        Printable ASCII in the first subset, where reportlab gives each of those
        characters its own code, is the text itself with `\\`, `(` and `)` escaped: most
        cells (numbers, ids, dates) take this path rather than reportlab's per-character
        subset walk, and `tests/test_pdf_layout.py` holds it to reportlab's output.
        """
        if self._curSubset == 0 and text.isascii() and text.isprintable() and self._ascii_kept():
            return (f"({text.translate(_PDF_ESCAPES)}) Tj" if text else ""), 0
        return self._formatText(text), self._curSubset

    def _ascii_kept(self) -> bool:
        """Whether the current font maps printable ASCII to itself in this document."""
        kept = self._ascii.get(self._fontname)
        if kept is None:
            font = pdfmetrics.getFont(self._fontname)
            state = getattr(font, "state", {}).get(self._canvas._doc)  # noqa: SLF001
            if state is None:  # nothing drawn in this font yet: reportlab sets it up
                return False
            assignments = state.assignments
            kept = self._ascii[self._fontname] = all(
                assignments.get(code) == code for code in range(32, 127)
            )
        return kept


@dataclass(frozen=True, slots=True)
class ReportInfo:
    """What the first page says about the export."""

    title: str
    source: str
    generated_at: str
    export_id: str


@dataclass(frozen=True, slots=True)
class Layout:
    page_w: float
    page_h: float
    widths: tuple[float, ...]
    font_size: float
    row_h: float
    numeric: tuple[bool, ...]
    """Columns whose sampled cells are all numbers: drawn right-aligned."""
    lefts: tuple[float, ...] = ()
    """Each column's left edge."""

    def __post_init__(self) -> None:
        edges, x = [], MARGIN
        for width in self.widths:
            edges.append(x)
            x += width
        object.__setattr__(self, "lefts", tuple(edges))


def check_columns_fit(columns: Sequence[str]) -> None:
    """Refuse, before any record is read, a column count no page can hold legibly."""
    usable_landscape = landscape(A4)[0] - 2 * MARGIN
    if len(columns) * MIN_COL_W > usable_landscape:
        most = int(usable_landscape // MIN_COL_W)
        raise InvalidRequest(
            f"columns: {len(columns)} columns cannot fit legibly on a landscape page at "
            f"{MIN_FONT:g}pt (at most {most} fit)"
        )


def plan_layout(
    columns: Sequence[str], sample: Sequence[Sequence[str]], options: ExportOptions
) -> Layout:
    """Widths from measured text; orientation and font size so every column fits legibly."""
    portrait_w, portrait_h = A4
    landscape_w, landscape_h = landscape(A4)
    check_columns_fit(columns)
    numeric = tuple(
        any(row[i] for row in sample) and all(_is_number(row[i]) for row in sample if row[i])
        for i in range(len(columns))
    )
    natural = []
    for index, name in enumerate(columns):
        cells = sorted(stringWidth(row[index], REGULAR, BODY_FONT) for row in sample)
        if numeric[index]:
            # Numbers are never cut, and later ones (ids, running totals) grow: the
            # widest sampled value plus two digits.
            typical = (cells[-1] if cells else 0.0) + stringWidth("00", REGULAR, BODY_FONT)
        else:
            # The 90th percentile: one very long value should not widen a column for all.
            typical = cells[int(len(cells) * 0.9)] if cells else 0.0
        natural.append(max(stringWidth(name, BOLD, BODY_FONT), typical) + 2 * CELL_PAD)
    wanted = sum(natural)
    if options.orientation is Orientation.PORTRAIT:
        page_w, page_h = portrait_w, portrait_h
    elif options.orientation is Orientation.LANDSCAPE or wanted > portrait_w - 2 * MARGIN:
        page_w, page_h = landscape_w, landscape_h
    else:
        page_w, page_h = portrait_w, portrait_h
    usable = page_w - 2 * MARGIN
    font_size = BODY_FONT
    if wanted > usable:
        # Shrink the font first (down to the minimum), then the widest columns.
        font_size = max(MIN_FONT, BODY_FONT * usable / wanted)
        natural = [w * font_size / BODY_FONT for w in natural]
        natural = _squeeze(natural, usable)
    scale = usable / sum(natural)
    widths = tuple(w * scale for w in natural)
    if min(widths) < MIN_COL_W - 0.01 and options.orientation is Orientation.PORTRAIT:
        raise InvalidRequest(
            f"columns: {len(columns)} columns cannot fit legibly on a portrait page; "
            "use orientation landscape or auto"
        )
    rows = options.rows_per_page + 1
    table_h = page_h - 2 * MARGIN - TITLE_BLOCK - FOOTER_BLOCK
    row_h = min(MAX_ROW_H, table_h / rows)
    min_row_h = font_size * 1.45
    if row_h < min_row_h:
        # More rows than a standard page holds legibly: the page grows taller instead.
        row_h = min_row_h
        page_h = rows * row_h + 2 * MARGIN + TITLE_BLOCK + FOOTER_BLOCK
    return Layout(page_w, page_h, widths, font_size, row_h, numeric)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _squeeze(widths: list[float], usable: float) -> list[float]:
    """Narrow the widest columns first until the total fits, never below MIN_COL_W."""
    widths = list(widths)
    while sum(widths) > usable + 0.01:
        excess = sum(widths) - usable
        widest = max(widths)
        over = [i for i, w in enumerate(widths) if w >= widest - 0.01]
        others = [w for w in widths if w < widest - 0.01]
        target = max(max(others, default=MIN_COL_W), MIN_COL_W, widest - excess / len(over))
        if target >= widest - 0.01:
            break
        for i in over:
            widths[i] = target
    return widths


def fit_text(text: str, width: float, font: str, size: float) -> str:
    """The text, cut with an ellipsis so it fits `width`; one line (line breaks as spaces)."""
    if "\n" in text or "\r" in text:
        text = " ".join(text.split())
    # Cheap bound first: no glyph in these fonts is wider than 1.3 em.
    if len(text) * size * 1.3 <= width or stringWidth(text, font, size) <= width:
        return text
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if stringWidth(text[:middle] + ELLIPSIS, font, size) <= width:
            low = middle
        else:
            high = middle - 1
    return text[:low] + ELLIPSIS


class PdfRenderer:
    """Draws a report; holds at most one page of rows, plus the canvas's compressed pages."""

    def __init__(
        self,
        columns: Sequence[str | Column],
        options: ExportOptions,
        info: ReportInfo,
        max_pages: int,
    ) -> None:
        self._fields = tuple(c.field for c in as_columns(columns))
        self._columns = tuple(c.label for c in as_columns(columns))
        """The headings."""
        self._options = options
        self._info = info
        self._max_pages = max_pages
        self._buffer = io.BytesIO()
        self._canvas: Canvas | None = None
        self._layout: Layout | None = None
        self._pending: list[list[str]] = []
        self._fitted: dict[tuple[str, int, str], tuple[float, str, float]] = {}
        """(font, column, text) -> (offset in the column, text as shown, size): values repeat."""
        self._formatted: FormatCache = {}
        self._origins: OriginCache = {}
        self._pages = 0
        self.records = 0
        check_columns_fit(self._columns)

    def add(self, records: Sequence[dict[str, Any]]) -> None:
        fields = self._fields
        self.add_rows([[cell_text(lookup(r, f)) for f in fields] for r in records])

    def add_rows(self, rows: list[list[str]]) -> None:
        """Rows of cell text, one per record, in the columns' order."""
        self._pending.extend(rows)
        self.records += len(rows)
        if self._layout is None and len(self._pending) >= SAMPLE_ROWS:
            self._start()
        per_page = self._options.rows_per_page
        while self._layout is not None and len(self._pending) >= per_page:
            self._draw_page(self._pending[:per_page])
            del self._pending[:per_page]

    def finish(self) -> bytes:
        """Draw what is left, write the page total, and return the PDF's bytes."""
        if self._layout is None:
            self._start()
        per_page = self._options.rows_per_page
        while self._pending or self._pages == 0:
            self._draw_page(self._pending[:per_page])
            del self._pending[:per_page]
        canvas = self._canvas
        assert canvas is not None  # noqa: S101 - _start() made it
        canvas.beginForm(TOTAL_FORM)
        canvas.setFont(REGULAR, 8)
        canvas.setFillColorRGB(*MUTED)
        canvas.drawString(0, 0, str(self._pages))
        canvas.endForm()
        canvas.save()
        return self._buffer.getvalue()

    def _start(self) -> None:
        self._layout = plan_layout(self._columns, self._pending[:SAMPLE_ROWS], self._options)
        self._canvas = Canvas(
            self._buffer,
            pagesize=(self._layout.page_w, self._layout.page_h),
            pageCompression=1,
            invariant=1,
        )
        self._canvas.setTitle(self._info.title)
        self._canvas.setAuthor("export-consumer")
        self._canvas.setSubject(f"Export {self._info.export_id}")

    def _draw_page(self, rows: Sequence[Sequence[str]]) -> None:
        layout, canvas = self._layout, self._canvas
        assert layout is not None  # noqa: S101 - _start() ran
        assert canvas is not None  # noqa: S101
        self._pages += 1
        if self._pages > self._max_pages:
            raise TooLarge(
                f"the report passed the limit of {self._max_pages} pages "
                f"({self._options.rows_per_page} rows a page) at record {self.records}"
            )
        top = layout.page_h - MARGIN
        if self._pages == 1:
            self._draw_title(canvas, top)
            top -= TITLE_BLOCK
        self._draw_grid(canvas, layout, top, len(rows))
        # One text object for the whole table: far fewer operators than one per row.
        text = CellText(canvas, self._formatted, self._origins)
        size, row_h = layout.font_size, layout.row_h
        lift = (row_h - size) / 2 + size * 0.22
        text.setFont(BOLD, size)
        text.setFillColorRGB(1, 1, 1)
        self._place_row(text, layout, top - row_h + lift, self._columns, BOLD)
        text.setFont(REGULAR, size)
        text.setFillColorRGB(0.1, 0.1, 0.1)
        for index, row in enumerate(rows, start=2):
            self._place_row(text, layout, top - index * row_h + lift, row, REGULAR)
        canvas.drawText(text)
        self._draw_footer(canvas, layout)
        canvas.showPage()
        _compress_last_page(canvas)
        if len(self._fitted) > CACHE_LIMIT:
            self._fitted.clear()
        if len(self._formatted) > CACHE_LIMIT:
            self._formatted.clear()
        if len(self._origins) > CACHE_LIMIT:
            self._origins.clear()

    def _draw_title(self, canvas: Canvas, top: float) -> None:
        info = self._info
        width = self._layout.page_w - 2 * MARGIN if self._layout else 0.0
        canvas.setFillColorRGB(0, 0, 0)
        canvas.setFont(BOLD, 15)
        canvas.drawString(MARGIN, top - 15, fit_text(info.title, width, BOLD, 15))
        canvas.setFont(REGULAR, 8.5)
        canvas.setFillColorRGB(*MUTED)
        line = f"Source {info.source}  ·  generated {info.generated_at}  ·  export {info.export_id}"
        canvas.drawString(MARGIN, top - 30, fit_text(line, width, REGULAR, 8.5))

    @staticmethod
    def _draw_grid(canvas: Canvas, layout: Layout, top: float, rows: int) -> None:
        """The header's band, the stripes of every other row and a rule under each row."""
        total = sum(layout.widths)
        row_h = layout.row_h
        canvas.setFillColorRGB(*HEADER_BG)
        canvas.rect(MARGIN, top - row_h, total, row_h, 0, 1)
        canvas.setFillColorRGB(*STRIPE_BG)
        # One path for all the stripes and one for all the rules: a fill and a stroke a
        # page rather than one a row.
        stripes = canvas.beginPath()
        for index in range(2, rows + 1, 2):
            stripes.rect(MARGIN, top - (index + 1) * row_h, total, row_h)
        canvas.drawPath(stripes, stroke=0, fill=1)
        canvas.setStrokeColorRGB(*RULE)
        canvas.setLineWidth(0.4)
        canvas.lines(
            [
                (MARGIN, y, MARGIN + total, y)
                for y in (top - (index + 1) * row_h for index in range(1, rows + 1))
            ]
        )

    def _place_row(
        self, text: CellText, layout: Layout, baseline: float, cells: Sequence[str], font: str
    ) -> None:
        size = layout.font_size
        fitted = self._fitted
        lefts = layout.lefts
        for column, cell in enumerate(cells):
            key = (font, column, cell)
            placed = fitted.get(key)
            if placed is None:
                placed = fitted[key] = self._fit_cell(layout, column, cell, font)
            dx, shown, cell_size = placed
            if cell_size == size:
                text.cell(lefts[column] + dx, baseline, shown)
            else:
                text.setFont(font, cell_size)
                text.cell(lefts[column] + dx, baseline, shown)
                text.setFont(font, size)

    @staticmethod
    def _fit_cell(layout: Layout, column: int, cell: str, font: str) -> tuple[float, str, float]:
        """Where the cell's text starts in its column, the text as shown, and its size.

        Text is cut with an ellipsis; a number that is too wide is drawn smaller instead,
        because a cut number would be a wrong one. Numeric columns, header included, are
        right-aligned.
        """
        size, width = layout.font_size, layout.widths[column]
        room = width - 2 * CELL_PAD
        if not layout.numeric[column]:
            return CELL_PAD, fit_text(cell, room, font, size), size
        if not _is_number(cell):
            cell = fit_text(cell, room, font, size)
        natural = stringWidth(cell, font, size)
        if natural > room:
            size = size * room / natural
            natural = room
        return width - CELL_PAD - natural, cell, size

    def _draw_footer(self, canvas: Canvas, layout: Layout) -> None:
        canvas.setFont(REGULAR, 8)
        canvas.setFillColorRGB(*MUTED)
        y = MARGIN - 4
        canvas.drawString(MARGIN, y, fit_text(self._info.title, layout.page_w / 2, REGULAR, 8))
        label = f"Page {self._pages} of "
        # Right-aligned as if the total had as many digits as this page number.
        digits = stringWidth(str(self._pages), REGULAR, 8)
        x = layout.page_w - MARGIN - stringWidth(label, REGULAR, 8) - digits
        canvas.drawString(x, y, label)
        canvas.saveState()
        canvas.translate(x + stringWidth(label, REGULAR, 8), y)
        canvas.doForm(TOTAL_FORM)
        canvas.restoreState()
