"""Charts print at >= 150 dpi; photographs and tables are fitted to the page. (Byte-reproducibility of the
charts is covered by the whole-PDF determinism test.)"""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image as PILImage
from reportlab.pdfbase.pdfmetrics import stringWidth

from auditor.reporting import Chart, Table, styles
from auditor.reporting.charts import render_chart_png
from auditor.reporting.flowables import (
    MAX_IMAGE_DPI, Numbering, chart_flowables, column_widths, fitted_image, table_flowables,
)
from auditor.reporting.pdf import FRAME_WIDTH

from tests.auditor.reporting.sample_report import build_sample_document

PT_PER_INCH = 72.0


def _charts(isic_dir) -> list[Chart]:
    document = build_sample_document(isic_dir)
    return [b for s in document.sections for b in s.blocks if isinstance(b, Chart)]


def test_sample_covers_every_chart_kind(isic_dir):
    assert sorted(c.kind for c in _charts(isic_dir)) == sorted(
        ["bar", "grouped_bar", "line", "roc", "distribution_vs_target"])


def test_charts_print_at_no_less_than_150_dpi(isic_dir):
    for chart in _charts(isic_dir):
        image = chart_flowables(chart, FRAME_WIDTH, Numbering())[0]
        # imageWidth/imageHeight are the embedded pixels, drawWidth/drawHeight the printed size in points.
        assert image.imageWidth / (image.drawWidth / PT_PER_INCH) >= 150, chart.kind
        assert image.imageHeight / (image.drawHeight / PT_PER_INCH) >= 150, chart.kind
        assert image.drawWidth <= FRAME_WIDTH + 1e-6
        png = render_chart_png(chart, image.drawWidth / PT_PER_INCH)
        with PILImage.open(io.BytesIO(png)) as decoded:
            assert decoded.size == (image.imageWidth, image.imageHeight)


def test_photographs_keep_their_aspect_and_fit_the_box(isic_dir):
    path = isic_dir / "images" / "ISIC_0000000.jpg"
    with PILImage.open(path) as picture:
        aspect = picture.width / picture.height
        picture.load()
    image = fitted_image(str(path), 200, 100)
    assert image.drawWidth <= 200 + 1e-6 and image.drawHeight <= 100 + 1e-6
    assert image.drawWidth / image.drawHeight == pytest.approx(aspect, rel=1e-6)
    assert image.drawHeight == pytest.approx(100) or image.drawWidth == pytest.approx(200)
    assert (image.imageWidth, image.imageHeight) == (picture.width, picture.height)  # small: embedded untouched


def test_oversized_photographs_are_downsampled_to_the_print_limit(tmp_path):
    big = tmp_path / "big.png"
    gradient = np.broadcast_to(np.linspace(0, 255, 3000, dtype=np.uint8)[None, :, None], (2000, 3000, 3))
    PILImage.fromarray(np.ascontiguousarray(gradient)).save(big)
    image = fitted_image(str(big), 144, 144)  # 2 x 2 inches
    assert image.imageWidth <= round(image.drawWidth / PT_PER_INCH * MAX_IMAGE_DPI) < 3000
    assert image.imageWidth / image.imageHeight == pytest.approx(1.5, rel=0.01)
    assert image.drawWidth == pytest.approx(144) and image.drawHeight == pytest.approx(96)


def test_column_widths_fill_the_frame_and_give_long_text_the_room():
    long_text = "a definition that is much longer than anything else in the table " * 4
    texts = [["Metric", "Definition", "N"], ["FD", long_text, "557"]]
    fonts = [[(styles.SANS, 8.0)] * 3] * 2
    widths = column_widths(texts, fonts, FRAME_WIDTH)
    assert sum(widths) == pytest.approx(FRAME_WIDTH)
    assert widths[1] > widths[0] and widths[1] > widths[2]
    # Short columns keep at least their longest word.
    assert widths[2] >= stringWidth("557", styles.SANS, 8.0)


def test_a_wide_table_wraps_inside_the_frame():
    columns = [f"Column with a long header {i}" for i in range(9)]
    table = Table(columns, [[f"cell text that goes on {i}" for i in range(9)], [0.1 * i for i in range(9)]], "wide")
    grid = table_flowables(table, FRAME_WIDTH, Numbering())[1]
    width, height = grid.wrap(FRAME_WIDTH, 10_000)
    assert width <= FRAME_WIDTH + 1e-6
    assert height > 3 * 12  # the header and text rows wrapped onto several lines instead of overflowing
