"""PDF layout decisions that need no broker: widths, orientation, cut text, fonts."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pypdf import PdfReader
from reportlab.pdfgen.canvas import Canvas
from reportlab.pdfgen.textobject import PDFTextObject

from consumer.errors import InvalidRequest
from consumer.structs import Column, ExportOptions, Orientation
from consumer.writers import pdf_fonts
from consumer.writers.pdf import (
    ELLIPSIS,
    MIN_FONT,
    CellText,
    PdfRenderer,
    ReportInfo,
    fit_text,
    plan_layout,
)
from consumer.writers.pdf_fonts import BOLD, REGULAR, find_font, register_fonts

INFO = ReportInfo("T", "topic[0]", "2026-11-28 17:00 UTC", "x")


@pytest.fixture(autouse=True, scope="module")
def fonts():
    choice = find_font(None)
    register_fonts(choice.regular, choice.bold)


class TestLayout:
    def test_few_narrow_columns_stay_portrait(self):
        """`auto` keeps portrait when the columns fit."""
        layout = plan_layout(["id", "name"], [["1", "Ann"]], ExportOptions())
        assert layout.page_w < layout.page_h
        assert layout.numeric == (True, False)

    def test_wide_content_turns_the_page(self):
        """`auto` picks landscape when the measured columns need it."""
        columns = [f"column{i}" for i in range(12)]
        sample = [["a fairly long value here"] * 12]
        layout = plan_layout(columns, sample, ExportOptions())
        assert layout.page_w > layout.page_h
        assert layout.font_size >= MIN_FONT

    def test_portrait_that_cannot_fit_says_so(self):
        """Forcing portrait on too many columns is refused with a way out."""
        with pytest.raises(InvalidRequest, match="landscape or auto"):
            plan_layout(
                [f"c{i}" for i in range(30)], [], ExportOptions(orientation=Orientation.PORTRAIT)
            )

    def test_many_rows_per_page_make_a_taller_page_not_tiny_text(self):
        """200 rows a page keep a legible row height; the page grows instead."""
        layout = plan_layout(["a"], [["x"]], ExportOptions(rows_per_page=200))
        assert layout.row_h >= MIN_FONT * 1.4
        assert layout.page_h > 842

    def test_too_many_columns_fail_before_any_record(self):
        """The column count alone can make a report impossible: refused at once."""
        with pytest.raises(InvalidRequest, match=r"^columns: 256 columns cannot fit legibly"):
            PdfRenderer([f"c{i}" for i in range(256)], ExportOptions(), INFO, 10)


class TestFitText:
    def test_short_text_is_untouched(self):
        """Text that fits is drawn as it is."""
        assert fit_text("Ann", 100, REGULAR, 8) == "Ann"

    def test_long_text_is_cut_with_an_ellipsis(self):
        """Text wider than the column ends in an ellipsis and fits."""
        cut = fit_text("x" * 500, 60, REGULAR, 8)
        assert cut.endswith(ELLIPSIS)
        assert 1 < len(cut) < 500

    def test_line_breaks_become_spaces(self):
        """A cell is one line."""
        assert fit_text("a\nb", 100, REGULAR, 8) == "a b"


def test_without_dejavu_the_bundled_vera_is_used(monkeypatch, tmp_path):
    """With no DejaVu on the system, reportlab's Vera is chosen and flagged."""
    monkeypatch.setattr(pdf_fonts, "DEJAVU_DIRS", (tmp_path,))
    choice = find_font(None)
    assert choice.regular.name == "Vera.ttf"
    assert choice.regular.is_file()
    assert not choice.is_dejavu


def test_characters_the_font_lacks_do_not_crash():
    """Emoji and CJK (not in DejaVu Sans) still render a report."""
    renderer = PdfRenderer(["a"], ExportOptions(), INFO, 10)
    renderer.add([{"a": "😀 漢字 \u0000 \ufffe"}])
    assert renderer.finish().startswith(b"%PDF")


def _page_texts(data: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(data)).pages]


def test_numbers_wider_than_the_sample_are_printed_whole():
    """Ids that outgrow the measured sample are drawn smaller, never cut to "1…"."""
    renderer = PdfRenderer(["id", "name"], ExportOptions(), INFO, 100)
    renderer.add([{"id": i, "name": "Ann"} for i in range(1, 201)])
    renderer.add([{"id": 123_456_789_012_345, "name": "Bob"}])
    last = _page_texts(renderer.finish())[-1]
    assert "123456789012345" in last
    assert ELLIPSIS not in last


def test_labels_head_every_page():
    """Column labels are the header row on every page; the fields find the values."""
    columns = [Column("id", "Invoice no."), Column("name", "Customer")]
    renderer = PdfRenderer(columns, ExportOptions(rows_per_page=10), INFO, 100)
    renderer.add([{"id": i, "name": f"Ann {i}"} for i in range(15)])
    pages = _page_texts(renderer.finish())
    assert len(pages) == 2
    for page in pages:
        assert "Invoice no." in page
        assert "Customer" in page
    assert "Ann 14" in pages[1]


def test_repeated_values_print_the_same_on_every_page():
    """Cached cell text still prints each value as written, on every page."""
    renderer = PdfRenderer(["note"], ExportOptions(rows_per_page=10), INFO, 100)
    renderer.add([{"note": "Ünïcödé ✓ <b>x</b> & Σοφία"} for _ in range(30)])
    pages = _page_texts(renderer.finish())
    assert len(pages) == 3
    assert all(page.count("Ünïcödé ✓ <b>x</b> & Σοφία") == 10 for page in pages)


# Printable ASCII with PDF's string delimiters and escape, and characters that make
# reportlab open a second subset (accented letters, CJK, an emoji), mixed.
_CELL_TEXT = st.text(
    alphabet=st.sampled_from([*map(chr, range(32, 127)), "é", "ß", "€", "中", "文", "😀", "\t"]),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(_CELL_TEXT, min_size=1, max_size=30), font=st.sampled_from([REGULAR, BOLD]))
def test_cell_text_writes_what_reportlab_writes(texts, font):
    """The plain-ASCII shortcut for cell text gives the very operators (and subset) that
    reportlab's own encoding gives, in any order of texts and fonts, on one canvas each."""
    ours_canvas, theirs_canvas = Canvas(io.BytesIO()), Canvas(io.BytesIO())
    ours = CellText(ours_canvas, {}, {})
    theirs = PDFTextObject(theirs_canvas)
    ours.setFont(font, 8)
    theirs.setFont(font, 8)
    for text in texts:
        ours.cell(10, 20, text)
        theirs.setTextOrigin(10, 20)
        theirs.textOut(text)
    ours_ops = [op for op in ours.getCode().split("\n") if not op.endswith("Tm")]
    theirs_ops = [op for op in theirs.getCode().split("\n") if not op.endswith("Td")]
    assert ours_ops == theirs_ops


def test_cell_text_takes_the_shortcut_for_plain_ascii():
    """Once the font is set up in the document, plain ASCII never reaches reportlab's
    per-character encoding (the shortcut is what makes it fast, so it must be taken)."""
    canvas = Canvas(io.BytesIO())
    text = CellText(canvas, {}, {})
    text.setFont(REGULAR, 8)
    text.cell(0, 0, "warm-up é")  # reportlab sets up the font's subsets in this document
    text.cell(0, 0, "x")  # back to the first subset
    calls: list[str] = []

    def record(value: str) -> str:
        calls.append(value)
        return ""

    text._formatText = record
    for value in ("12345.67", "a (b) \\ c", "2026-01-01T00:00:00Z"):
        text.cell(0, 0, value)
    assert calls == []
    text.cell(0, 0, "Zoë")
    assert calls == ["Zoë"]
