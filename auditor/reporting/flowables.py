"""Turn report blocks into reportlab platypus flowables, each fitted to a given frame width."""
from __future__ import annotations

import io
import re
from pathlib import Path
from xml.sax.saxutils import escape

from PIL import Image as PILImage
from reportlab.lib import colors
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import Flowable, Image, Spacer, TableStyle
from reportlab.platypus import Paragraph as RLParagraph
from reportlab.platypus import Table as RLTable

from auditor.reporting import styles
from auditor.reporting.charts import CHART_DPI, chart_aspect, chart_width_fraction, render_chart_png
from auditor.reporting.document import Block, Callout, Chart, Facts, ImageGrid, Paragraph, Table

# Long hexadecimal digests (manifest and weights hashes) print in a monospaced face so they can be read and
# compared character by character.
_DIGEST = re.compile(r"^(sha256:)?[0-9a-f]{32,}$")
# Embedded photographs are downsampled beyond this printed resolution; more only makes the file heavier.
MAX_IMAGE_DPI = 300
PT_PER_INCH = 72.0
MAX_PICTURE_HEIGHT = 6.5 / 2.54 * PT_PER_INCH  # 6.5 cm: two pairs of photographs fit on a page


class Numbering:
    """Running numbers for "Table n." and "Figure n." captions."""

    def __init__(self) -> None:
        self.tables = 0
        self.figures = 0

    def next_table(self) -> int:
        self.tables += 1
        return self.tables

    def next_figure(self) -> int:
        self.figures += 1
        return self.figures


def text(value: str, style) -> RLParagraph:
    """A paragraph of plain text: markup characters are escaped, newlines kept."""
    return RLParagraph(escape(value).replace("\n", "<br/>"), style)


def _is_numeric(cell) -> bool:
    return cell is not None and not isinstance(cell, str)


def column_widths(texts: list[list[str]], fonts: list[list[tuple[str, float]]], width: float,
                  stretchable: list[bool] | None = None) -> list[float]:
    """Widths that sum to `width`. Every column gets at least its longest word; when everything fits on one
    line the spare width goes to the `stretchable` (text) columns, otherwise to the columns that would wrap
    most, in proportion to how much more they want."""
    n_columns = len(texts[0])
    natural = [0.0] * n_columns
    minimum = [0.0] * n_columns
    padding = 2 * styles.CELL_PADDING + 1
    for row_texts, row_fonts in zip(texts, fonts):
        for c, (value, (font, size)) in enumerate(zip(row_texts, row_fonts)):
            natural[c] = max(natural[c], stringWidth(value, font, size) + padding)
            longest_word = max((stringWidth(word, font, size) for word in value.split()), default=0.0)
            minimum[c] = max(minimum[c], longest_word + padding)
    # A single unbreakable word (a digest) may not claim more than 60% of the table; reportlab splits it.
    minimum = [min(m, 0.6 * width) for m in minimum]
    if sum(minimum) >= width:
        return [m * width / sum(minimum) for m in minimum]
    if sum(natural) <= width:
        weights = [n if stretchable is None or stretchable[c] else 0.0 for c, n in enumerate(natural)]
        if not any(weights):
            weights = natural
        spare = width - sum(natural)
        return [n + spare * w / sum(weights) for n, w in zip(natural, weights)]
    spare = width - sum(minimum)
    wants = [max(n - m, 0.0) for n, m in zip(natural, minimum)]
    return [m + spare * w / sum(wants) for m, w in zip(minimum, wants)]


def _base_table_style(n_rows: int, header: bool) -> list[tuple]:
    commands = [
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), styles.CELL_PADDING),
        ("RIGHTPADDING", (0, 0), (-1, -1), styles.CELL_PADDING),
        ("TOPPADDING", (0, 0), (-1, -1), 2.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
        ("LINEABOVE", (0, 0), (-1, 0), 0.8, styles.ACCENT),
        ("LINEBELOW", (0, -1), (-1, -1), 0.8, styles.ACCENT),
        ("LINEBELOW", (0, 0), (-1, -2), 0.25, styles.HAIRLINE),
    ]
    first_body_row = 1 if header else 0
    if header:
        commands += [("BACKGROUND", (0, 0), (-1, 0), styles.HEADER_FILL),
                     ("LINEBELOW", (0, 0), (-1, 0), 0.6, styles.ACCENT)]
    if n_rows > first_body_row:
        commands.append(("ROWBACKGROUNDS", (0, first_body_row), (-1, -1), [colors.white, styles.STRIPE_FILL]))
    return commands


def table_flowables(table: Table, width: float, numbering: Numbering) -> list[Flowable]:
    rows_text = table.rows_text()
    numeric_columns = [
        bool(table.rows) and all(_is_numeric(row[c]) or row[c] is None for row in table.rows)
        and any(_is_numeric(row[c]) for row in table.rows)
        for c in range(len(table.columns))
    ]

    def cell_style(row_index: int | None, column: int, value: str):
        if row_index is None:
            return styles.CELL_HEADER_RIGHT if numeric_columns[column] else styles.CELL_HEADER
        if _DIGEST.match(value):
            return styles.CELL_MONO
        right = numeric_columns[column] or _is_numeric(table.rows[row_index][column])
        return styles.CELL_RIGHT if right else styles.CELL

    grid_styles = [[cell_style(None, c, v) for c, v in enumerate(table.columns)]]
    grid_styles += [[cell_style(r, c, v) for c, v in enumerate(row)] for r, row in enumerate(rows_text)]
    grid_texts = [table.columns] + rows_text
    widths = column_widths(grid_texts, [[(s.fontName, s.fontSize) for s in row] for row in grid_styles], width,
                           stretchable=[not numeric for numeric in numeric_columns])
    cells = [[text(value, style) for value, style in zip(row_texts, row_styles)]
             for row_texts, row_styles in zip(grid_texts, grid_styles)]

    commands = _base_table_style(len(cells), header=True)
    if table.status_column is not None:
        for r, row in enumerate(rows_text, start=1):
            status = row[table.status_column].strip().upper()
            if status in styles.STATUS_COLOURS:
                ink, fill = styles.STATUS_COLOURS[status]
                cells[r][table.status_column] = RLParagraph(
                    f'<font name="{styles.SANS_BOLD}" color="{ink.hexval()}">{escape(row[table.status_column])}</font>',
                    styles.CELL)
                commands.append(("BACKGROUND", (table.status_column, r), (table.status_column, r), fill))
    grid = RLTable(cells, colWidths=widths, repeatRows=1, style=TableStyle(commands), hAlign="LEFT")
    caption = text(f"Table {numbering.next_table()}. {table.caption}", styles.CAPTION)
    return [caption, grid, Spacer(1, 8)]


def facts_flowables(facts: Facts, width: float) -> list[Flowable]:
    if not facts.rows:
        return []
    cells = [[text(key, styles.FACT_KEY), text(value, styles.CELL_MONO if _DIGEST.match(value) else styles.FACT_VALUE)]
             for key, value in facts.rows]
    key_width = min(max(stringWidth(key, styles.SANS_BOLD, 8.5) for key, _ in facts.rows) + 2 * styles.CELL_PADDING + 2,
                    0.38 * width)
    commands = _base_table_style(len(cells), header=False)
    grid = RLTable(cells, colWidths=[key_width, width - key_width], style=TableStyle(commands), hAlign="LEFT")
    return [grid, Spacer(1, 8)]


def chart_flowables(chart: Chart, width: float, numbering: Numbering) -> list[Flowable]:
    printed_width = width * chart_width_fraction(chart.kind)
    png = render_chart_png(chart, printed_width / PT_PER_INCH, dpi=CHART_DPI)
    image = Image(io.BytesIO(png), width=printed_width, height=printed_width * chart_aspect(chart.kind))
    image.hAlign = "CENTER"
    image.keepWithNext = 1  # a figure never leaves its caption behind
    return [image, text(f"Figure {numbering.next_figure()}. {chart.title}", styles.FIGURE_CAPTION)]


def fitted_image(path: str, max_width: float, max_height: float) -> Image:
    """The picture scaled (aspect kept) to fit the box; downsampled when it would print above MAX_IMAGE_DPI."""
    source = Path(path)
    with PILImage.open(source) as picture:
        pixel_width, pixel_height = picture.size
        scale = min(max_width / pixel_width, max_height / pixel_height)
        printed = (pixel_width * scale, pixel_height * scale)
        limit = (round(printed[0] / PT_PER_INCH * MAX_IMAGE_DPI), round(printed[1] / PT_PER_INCH * MAX_IMAGE_DPI))
        if picture.format in ("JPEG", "PNG") and pixel_width <= limit[0] and pixel_height <= limit[1]:
            return Image(str(source), width=printed[0], height=printed[1])
        smaller = picture.convert("RGB")
        smaller.thumbnail(limit, PILImage.Resampling.LANCZOS)
        buffer = io.BytesIO()
        smaller.save(buffer, format="PNG")
    buffer.seek(0)
    return Image(buffer, width=printed[0], height=printed[1])


def _picture_box(grid: ImageGrid, width: float) -> tuple[float, float]:
    side = width / grid.columns - 2 * styles.CELL_PADDING
    return side, min(side, MAX_PICTURE_HEIGHT)


def image_grid_flowables(grid: ImageGrid, width: float, numbering: Numbering) -> list[Flowable]:
    if not grid.images:
        return []
    cell_width = width / grid.columns
    picture_box = _picture_box(grid, width)
    cells = [[fitted_image(ref.path, *picture_box), text(ref.caption, styles.IMAGE_CAPTION)] for ref in grid.images]
    rows = [cells[i:i + grid.columns] for i in range(0, len(cells), grid.columns)]
    rows[-1] = rows[-1] + [""] * (grid.columns - len(rows[-1]))
    table = RLTable(rows, colWidths=[cell_width] * grid.columns, hAlign="CENTER", style=TableStyle([
        ("ALIGN", (0, 0), (-1, -1), "CENTER"),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 3),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 5),
    ]))
    caption = text(f"Figure {numbering.next_figure()}. {grid.title}", styles.FIGURE_CAPTION)
    return [table, caption]


def callout_flowables(callout: Callout, width: float) -> list[Flowable]:
    ink, fill = styles.CALLOUT_COLOURS[callout.level]
    label = styles.CALLOUT_LABELS[callout.level]
    body = RLParagraph(f'<font name="{styles.SANS_BOLD}" color="{ink.hexval()}">{label}.</font> '
                       f'{escape(callout.text)}', styles.CALLOUT)
    box = RLTable([[body]], colWidths=[width], hAlign="LEFT", style=TableStyle([
        ("BACKGROUND", (0, 0), (-1, -1), fill),
        ("LINEBEFORE", (0, 0), (0, -1), 3, ink),
        ("LEFTPADDING", (0, 0), (-1, -1), 8),
        ("RIGHTPADDING", (0, 0), (-1, -1), 8),
        ("TOPPADDING", (0, 0), (-1, -1), 5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 6),
    ]))
    return [box, Spacer(1, 8)]


def space_to_start(block: Block, width: float) -> float:
    """Height a block needs at the bottom of a page to begin there sensibly (a table's caption, header and a
    few rows; a whole figure); a page break is inserted before it when less is left."""
    if isinstance(block, Chart):
        printed_width = width * chart_width_fraction(block.kind)
        return printed_width * chart_aspect(block.kind) + 28
    if isinstance(block, ImageGrid):
        return _picture_box(block, width)[1] + 45
    if isinstance(block, Table):
        return 40 + 15 * min(len(block.rows), 3)
    return 45


def block_flowables(block: Block, width: float, numbering: Numbering) -> list[Flowable]:
    if isinstance(block, Paragraph):
        return [text(block.text, styles.BODY)]
    if isinstance(block, Facts):
        return facts_flowables(block, width)
    if isinstance(block, Table):
        return table_flowables(block, width, numbering)
    if isinstance(block, Chart):
        return chart_flowables(block, width, numbering)
    if isinstance(block, ImageGrid):
        return image_grid_flowables(block, width, numbering)
    if isinstance(block, Callout):
        return callout_flowables(block, width)
    raise TypeError(f"not a report block: {type(block).__name__}")

