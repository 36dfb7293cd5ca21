"""Render a ReportDocument to an A4 PDF with reportlab platypus.

Layout: a title block, section 0 "Document control" built from the document's own fields (plus any blocks of a
section numbered 0), a table of contents, then the sections. Every page carries a header (title, report id,
version, status) and a footer (generation time, software version, "Page x of y"); drafts carry a DRAFT watermark.
"Page x of y" needs the page count before the first page is final, hence the NumberedCanvas pattern: pages are
buffered in `showPage` and decorated in `save`. The table of contents needs a second layout pass (multiBuild).

Output is reproducible: the canvas runs in reportlab's invariant mode (fixed document id), the PDF creation date
is the report's generation time, and charts are byte-stable PNGs, so the same document gives the same bytes and
the same SHA-256. A PDF cannot contain its own hash: the SHA-256 returned here is recorded beside the file.
"""
from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from xml.sax.saxutils import escape

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import BaseDocTemplate, CondPageBreak, Flowable, Frame, PageBreak, PageTemplate, Spacer
from reportlab.platypus import Paragraph as RLParagraph
from reportlab.platypus.tableofcontents import TableOfContents

from auditor.reporting import styles
from auditor.reporting.document import Facts, ImageGrid, ReportDocument, format_number
from auditor.reporting.flowables import Numbering, block_flowables, facts_flowables, space_to_start, text
from metrics.atomic_files import write_file_atomically

PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN_LEFT = MARGIN_RIGHT = 20 * mm
MARGIN_TOP = 24 * mm
MARGIN_BOTTOM = 20 * mm
FRAME_WIDTH = PAGE_WIDTH - MARGIN_LEFT - MARGIN_RIGHT
DOCUMENT_CONTROL_TITLE = "Document control"
HEADING_SPACE = 40.0


def status_label(document: ReportDocument) -> str:
    return document.status.upper()


def document_control_facts(document: ReportDocument) -> Facts:
    """Section 0 of every report: identity, status, provenance and approval of this version."""
    rows = [
        ("Report ID", document.report_id),
        ("Version", format_number(document.version)),
        ("Status", status_label(document)),
        ("Generated (UTC)", document.generated_at_utc),
        ("Software version", document.software_version),
    ]
    rows += [(f"Random seed: {name}", format_number(seed)) for name, seed in sorted(document.seeds.items())]
    rows += [
        ("Prepared by", document.prepared_by),
        ("Approved by", document.approved_by or "not approved (draft)"),
        ("Approved at (UTC)", document.approved_at_utc or "n/a"),
        ("PDF SHA-256", "recorded with the report version in the report register and the JSON twin "
                        "(a file cannot contain its own hash)"),
    ]
    return Facts(rows)


class ReportCanvas(Canvas):
    """Buffers pages so that the header/footer can say "Page x of y" once y is known."""

    def __init__(self, *args, document: ReportDocument, **kwargs):
        super().__init__(*args, **kwargs)
        self._report = document
        self._page_states: list[dict] = []

    def showPage(self) -> None:  # noqa: N802 (reportlab's name)
        self._page_states.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._page_states)
        for state in self._page_states:
            self.__dict__.update(state)
            self._draw_header_and_footer(total)
            self._draw_watermark()
            super().showPage()
        super().save()

    def _draw_watermark(self) -> None:
        # Drawn over the content (table fills would hide it otherwise) but light enough to read through.
        if self._report.status != "draft":
            return
        self.saveState()
        self.setFont(styles.SANS_BOLD, 110)
        self.setFillColor(styles.WATERMARK)
        self.translate(PAGE_WIDTH / 2, PAGE_HEIGHT / 2)
        self.rotate(45)
        self.drawCentredString(0, -38, "DRAFT")
        self.restoreState()

    def _draw_header_and_footer(self, total: int) -> None:
        report = self._report
        top = PAGE_HEIGHT - 14 * mm
        bottom = 12 * mm
        right = PAGE_WIDTH - MARGIN_RIGHT
        self.saveState()
        self.setStrokeColor(styles.RULE)
        self.setLineWidth(0.5)
        self.line(MARGIN_LEFT, top - 2.5 * mm, right, top - 2.5 * mm)
        self.line(MARGIN_LEFT, bottom + 4 * mm, right, bottom + 4 * mm)

        status = status_label(report)
        status_ink = styles.STATUS_COLOURS["FAIL" if report.status == "draft" else "PASS"][0]
        identity = f"{report.report_id} · version {report.version} · "
        status_width = stringWidth(status, styles.SANS_BOLD, 7.5)
        identity_width = stringWidth(identity, styles.SANS, 7.5)
        # Drawn left to right so that extracted text reads "title … id · version n · STATUS".
        self.setFont(styles.SANS, 7.5)
        self.setFillColor(styles.MUTED)
        room = FRAME_WIDTH - status_width - identity_width - 12
        self.drawString(MARGIN_LEFT, top, _elide(report.title, styles.SANS, 7.5, room))
        self.drawString(right - status_width - identity_width, top, identity)
        self.setFont(styles.SANS_BOLD, 7.5)
        self.setFillColor(status_ink)
        self.drawRightString(right, top, status)

        provenance = f"Generated {report.generated_at_utc} · software {report.software_version}"
        self.setFont(styles.SANS, 7.5)
        self.setFillColor(styles.MUTED)
        self.drawString(MARGIN_LEFT, bottom, provenance)
        self.setFont(styles.SANS_BOLD, 7.5)
        self.setFillColor(styles.INK)
        self.drawRightString(right, bottom, f"Page {self._pageNumber} of {total}")
        self.restoreState()


def _elide(value: str, font: str, size: float, room: float) -> str:
    if stringWidth(value, font, size) <= room:
        return value
    while value and stringWidth(value + "…", font, size) > room:
        value = value[:-1]
    return value.rstrip() + "…"


class SectionHeading(RLParagraph):
    """A numbered section title; the template bookmarks it and lists it in the table of contents."""

    def __init__(self, number: int, title: str):
        self.number = number
        self.title = title
        super().__init__(f"{number}&nbsp;&nbsp;&nbsp;{escape(title)}", styles.SECTION_HEADING)


class ReportTemplate(BaseDocTemplate):
    def __init__(self, target, document: ReportDocument):
        super().__init__(
            target, pagesize=A4, leftMargin=MARGIN_LEFT, rightMargin=MARGIN_RIGHT, topMargin=MARGIN_TOP,
            bottomMargin=MARGIN_BOTTOM, invariant=1, title=document.title, author=document.prepared_by,
            subject=f"DermAudit report {document.report_id}, version {document.version} ({document.status})",
            creator=f"DermAudit {document.software_version}",
        )
        self.report = document
        frame = Frame(MARGIN_LEFT, MARGIN_BOTTOM, FRAME_WIDTH, PAGE_HEIGHT - MARGIN_TOP - MARGIN_BOTTOM, id="body",
                      leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0)
        self.addPageTemplates([PageTemplate(id="page", frames=[frame])])

    def beforeDocument(self) -> None:
        # The PDF's creation date is the report's generation time (invariant mode would say 2000-01-01).
        moment = self.report.generated_at()
        stamp = moment.strftime("D:%Y%m%d%H%M%S+00'00'")
        self.canv.setDateFormatter(lambda *_: stamp)
        self.canv.showOutline()

    def afterFlowable(self, flowable: Flowable) -> None:
        if isinstance(flowable, SectionHeading):
            key = f"section-{flowable.number}"
            label = f"{flowable.number} {flowable.title}"
            self.canv.bookmarkPage(key)
            self.canv.addOutlineEntry(label, key, level=0)
            self.notify("TOCEntry", (0, escape(label), self.page, key))


def _contents() -> list[Flowable]:
    toc = TableOfContents(dotsMinLevel=0)
    toc.levelStyles = [styles.TOC_ENTRY]
    return [RLParagraph("Contents", styles.TOC_HEADING), toc]


def build_story(document: ReportDocument) -> list[Flowable]:
    numbering = Numbering()
    story: list[Flowable] = [
        text(document.title, styles.TITLE),
        text(f"Report {document.report_id} · version {document.version} · {status_label(document)} · "
             f"generated {document.generated_at_utc}", styles.SUBTITLE),
        SectionHeading(0, DOCUMENT_CONTROL_TITLE),
    ]
    story += facts_flowables(document_control_facts(document), FRAME_WIDTH)
    extra_control = [s for s in document.sections if s.number == 0]
    for section in extra_control:
        for block in section.blocks:
            story += block_flowables(block, FRAME_WIDTH, numbering)
    story += [Spacer(1, 6)] + _contents() + [PageBreak()]
    # Page breaks are decided with CondPageBreak rather than keepWithNext: reportlab will not keep a heading
    # with a table or figure that is itself split or grouped, and a kept-together long table jumps a page.
    for section in document.sections:
        if section.number == 0:
            continue
        first = space_to_start(section.blocks[0], FRAME_WIDTH) if section.blocks else 0.0
        story += [CondPageBreak(HEADING_SPACE + first), SectionHeading(section.number, section.title)]
        for index, block in enumerate(section.blocks):
            if index:
                story.append(CondPageBreak(space_to_start(block, FRAME_WIDTH)))
            story += block_flowables(block, FRAME_WIDTH, numbering)
    return story


def with_picture_files(document: ReportDocument, picture_file: Callable[[str], str | os.PathLike]) -> ReportDocument:
    """The document with every ImageRef's name turned into the local file the renderer reads. ImageRefs hold storage
    names (relative to MEDIA_ROOT, as the JSON twin keeps them); `picture_file` resolves one (the service passes
    default_storage.path). The document itself is not changed: its twin keeps the names."""
    sections = [replace(section, blocks=[
        replace(block, images=[replace(ref, path=str(picture_file(ref.path))) for ref in block.images])
        if isinstance(block, ImageGrid) else block for block in section.blocks]) for section in document.sections]
    return replace(document, sections=sections)


def render_pdf_bytes(document: ReportDocument, picture_file: Callable[[str], str | os.PathLike] | None = None) -> bytes:
    """The PDF's bytes. `picture_file` maps an ImageRef's path (a storage name) to a readable file; without it the
    paths are read as they are (relative to the working directory, or absolute)."""
    if picture_file is not None:
        document = with_picture_files(document, picture_file)
    buffer = io.BytesIO()
    template = ReportTemplate(buffer, document)
    template.multiBuild(build_story(document), canvasmaker=partial(ReportCanvas, document=document))
    return buffer.getvalue()


def render_pdf(document: ReportDocument, path: str | os.PathLike,
               picture_file: Callable[[str], str | os.PathLike] | None = None) -> str:
    """Write the report to `path` (atomically) and return the SHA-256 hex digest of the written bytes."""
    data = render_pdf_bytes(document, picture_file)
    write_file_atomically(path, data)
    return hashlib.sha256(data).hexdigest()
