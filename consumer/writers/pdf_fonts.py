"""The PDF font: DejaVu Sans when found (or EXPORT_PDF_FONT), else reportlab's bundled Vera."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import reportlab
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

log = logging.getLogger(__name__)

DEJAVU_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/TTF"),
    Path("/usr/share/fonts/dejavu"),
)
REGULAR = "ExportSans"
BOLD = "ExportSans-Bold"


@dataclass(frozen=True, slots=True)
class FontChoice:
    """Files of the regular and bold faces, and whether they cover more than Latin-1."""

    regular: Path
    bold: Path
    is_dejavu: bool


def find_font(configured: Path | None) -> FontChoice:
    """The configured font, else DejaVu Sans on the system, else Vera from reportlab."""
    if configured is not None:
        bold = configured.with_name(configured.stem + "-Bold" + configured.suffix)
        return FontChoice(configured, bold if bold.is_file() else configured, is_dejavu=True)
    for folder in DEJAVU_DIRS:
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.is_file():
            return FontChoice(regular, bold if bold.is_file() else regular, is_dejavu=True)
    vera = Path(reportlab.__file__).parent / "fonts"
    return FontChoice(vera / "Vera.ttf", vera / "VeraBd.ttf", is_dejavu=False)


@cache
def register_fonts(regular: Path, bold: Path) -> None:
    """Register the faces with reportlab once per process (each worker does it once)."""
    pdfmetrics.registerFont(TTFont(REGULAR, str(regular)))
    pdfmetrics.registerFont(TTFont(BOLD, str(bold)))
