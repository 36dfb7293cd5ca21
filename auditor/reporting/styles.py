"""Fonts, colours and paragraph styles of the PDF report.

Fonts are the DejaVu TrueType files that ship inside matplotlib (always installed with it): they cover the
symbols a statistics report needs (≤ ≥ ± × κ α), unlike the PDF base-14 fonts, and they are the same family
the charts use. reportlab embeds only the glyphs used, with a ToUnicode map so text extraction works.
"""
from __future__ import annotations

from pathlib import Path

from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.styles import ParagraphStyle
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

SANS = "DejaVuSans"
SANS_BOLD = "DejaVuSans-Bold"
SANS_ITALIC = "DejaVuSans-Oblique"
SANS_BOLD_ITALIC = "DejaVuSans-BoldOblique"
MONO = "DejaVuSansMono"

INK = colors.HexColor("#1A1A1A")
MUTED = colors.HexColor("#5A6270")
RULE = colors.HexColor("#B8BEC7")
HAIRLINE = colors.HexColor("#D9DDE3")
HEADER_FILL = colors.HexColor("#E6EAF0")
STRIPE_FILL = colors.HexColor("#F6F7F9")
ACCENT = colors.HexColor("#1F3A5F")
WATERMARK = colors.Color(0.80, 0.12, 0.12, alpha=0.10)

# (text colour, fill colour) for PASS/FAIL cells and for callouts.
STATUS_COLOURS = {
    "PASS": (colors.HexColor("#1B5E20"), colors.HexColor("#E3F1E4")),
    "FAIL": (colors.HexColor("#B71C1C"), colors.HexColor("#FBE4E4")),
}
CALLOUT_COLOURS = {
    "pass": (colors.HexColor("#2E7D32"), colors.HexColor("#EEF6EE")),
    "fail": (colors.HexColor("#C62828"), colors.HexColor("#FCEDED")),
    "warning": (colors.HexColor("#B26A00"), colors.HexColor("#FFF6E5")),
    "info": (colors.HexColor("#1F5FA8"), colors.HexColor("#EDF3FA")),
}
# Callout labels are title case on purpose: upper-case "PASS"/"FAIL" appear only in status columns, so counting
# "FAIL" in the PDF text counts failed criteria.
CALLOUT_LABELS = {"pass": "Pass", "fail": "Fail", "warning": "Warning", "info": "Note"}

BODY_SIZE = 9.5
TABLE_SIZE = 8.0
CELL_PADDING = 4.0


def register_fonts() -> None:
    """Register the DejaVu family once per process (reportlab keeps a global font registry)."""
    if SANS in pdfmetrics.getRegisteredFontNames():
        return
    import matplotlib

    font_dir = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    for name in (SANS, SANS_BOLD, SANS_ITALIC, SANS_BOLD_ITALIC, MONO):
        pdfmetrics.registerFont(TTFont(name, str(font_dir / f"{name}.ttf")))
    pdfmetrics.registerFontFamily(SANS, normal=SANS, bold=SANS_BOLD, italic=SANS_ITALIC, boldItalic=SANS_BOLD_ITALIC)


def _style(name: str, **overrides) -> ParagraphStyle:
    base = {"fontName": SANS, "fontSize": BODY_SIZE, "leading": BODY_SIZE * 1.35, "textColor": INK,
            "alignment": TA_LEFT}
    base.update(overrides)
    return ParagraphStyle(name, **base)


register_fonts()

TITLE = _style("ReportTitle", fontName=SANS_BOLD, fontSize=20, leading=25, textColor=ACCENT, spaceAfter=6)
SUBTITLE = _style("ReportSubtitle", fontSize=10.5, leading=14, textColor=MUTED, spaceAfter=14)
SECTION_HEADING = _style("SectionHeading", fontName=SANS_BOLD, fontSize=13, leading=17, textColor=ACCENT,
                         spaceBefore=14, spaceAfter=7)
BODY = _style("Body", spaceAfter=6)
CAPTION = _style("Caption", fontName=SANS_BOLD, fontSize=8.5, leading=11, textColor=INK, spaceBefore=4,
                 spaceAfter=4)
FIGURE_CAPTION = _style("FigureCaption", fontSize=8.5, leading=11, textColor=MUTED, spaceBefore=3, spaceAfter=10)
CELL = _style("Cell", fontSize=TABLE_SIZE, leading=TABLE_SIZE * 1.25)
CELL_RIGHT = _style("CellRight", parent=CELL, fontSize=TABLE_SIZE, leading=TABLE_SIZE * 1.25, alignment=2)
CELL_HEADER = _style("CellHeader", fontName=SANS_BOLD, fontSize=TABLE_SIZE, leading=TABLE_SIZE * 1.25)
CELL_HEADER_RIGHT = _style("CellHeaderRight", fontName=SANS_BOLD, fontSize=TABLE_SIZE, leading=TABLE_SIZE * 1.25,
                           alignment=2)
CELL_MONO = _style("CellMono", fontName=MONO, fontSize=7.2, leading=9.5)
FACT_KEY = _style("FactKey", fontName=SANS_BOLD, fontSize=8.5, leading=11)
FACT_VALUE = _style("FactValue", fontSize=8.5, leading=11)
IMAGE_CAPTION = _style("ImageCaption", fontSize=7, leading=8.8, textColor=MUTED, alignment=1)
CALLOUT = _style("Callout", fontSize=9, leading=12.5)
TOC_HEADING = _style("TocHeading", fontName=SANS_BOLD, fontSize=13, leading=17, textColor=ACCENT, spaceBefore=10,
                     spaceAfter=8)
TOC_ENTRY = _style("TocEntry", fontSize=9.5, leading=15, leftIndent=0)
