"""PDF layout decisions that need no broker: widths, orientation, cut text, fonts."""

from __future__ import annotations

import pytest

from consumer.errors import InvalidRequest
from consumer.structs import ExportOptions, Orientation
from consumer.writers import pdf_fonts
from consumer.writers.pdf import (
    ELLIPSIS,
    MIN_FONT,
    PdfRenderer,
    ReportInfo,
    fit_text,
    plan_layout,
)
from consumer.writers.pdf_fonts import REGULAR, find_font, register_fonts

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
