"""Reporting: an audit's stored results become a versioned, regulatory-style PDF report and its JSON twin.

Entry point: `auditor.reporting.issuing.issue_draft` (the audit's report stage) and `sign_report` (an electronic signature: four eyes, password, meaning and reason).
`criteria` evaluates the acceptance criteria from the stored results, `builder` and `sections` turn results into
a document, `document`/`formatting` are the report as plain data (no Django), rendered by `pdf`, `charts`,
`flowables` and `styles`:

    from auditor.reporting import ReportDocument, Section, Table, render_pdf
    sha256 = render_pdf(document, "report-v1.pdf")
    json.dumps(document.to_dict(), allow_nan=False)   # the JSON twin

The PDF modules (reportlab, matplotlib) load on first use of `render_pdf`, so code that only builds or stores
documents does not pay for them.
"""
from __future__ import annotations

from auditor.reporting.document import (
    CALLOUT_LEVELS,
    CHART_KINDS,
    NOT_AVAILABLE,
    SCHEMA,
    Block,
    Callout,
    Cell,
    Chart,
    Facts,
    ImageGrid,
    ImageRef,
    Interval,
    Paragraph,
    ReportDocument,
    Section,
    Table,
    format_cell,
    format_interval,
    format_number,
)


def render_pdf(document: ReportDocument, path) -> str:
    """Write `document` as a PDF to `path`; return the SHA-256 hex digest of the bytes written."""
    from auditor.reporting.pdf import render_pdf as _render_pdf

    return _render_pdf(document, path)


def render_pdf_bytes(document: ReportDocument) -> bytes:
    from auditor.reporting.pdf import render_pdf_bytes as _render_pdf_bytes

    return _render_pdf_bytes(document)


__all__ = [
    "CALLOUT_LEVELS", "CHART_KINDS", "NOT_AVAILABLE", "SCHEMA", "Block", "Callout", "Cell", "Chart", "Facts",
    "ImageGrid", "ImageRef", "Interval", "Paragraph", "ReportDocument", "Section", "Table", "format_cell",
    "format_interval", "format_number", "render_pdf", "render_pdf_bytes",
]
