"""The rendered PDF says what the JSON twin says, on pages that are numbered, printable and reproducible."""
from __future__ import annotations

import hashlib
import io
import re
import subprocess
from pathlib import Path

import pytest
from pypdf import PdfReader

from auditor.reporting import (
    Callout, Chart, Facts, ImageGrid, Paragraph, ReportDocument, Section, Table, render_pdf, render_pdf_bytes,
)
from auditor.reporting.pdf import FRAME_WIDTH, MARGIN_LEFT, PAGE_WIDTH

from tests.auditor.reporting.sample_report import CRITERIA, FAILING, LONG_TABLE_HEADER, SECTION_TITLES, build_sample_document


def _words(text: str) -> str:
    # Wrapped cells come out with line breaks; the comparison is about the characters, not the layout.
    return " ".join(text.split())


@pytest.fixture(scope="module")
def rendered(isic_dir, tmp_path_factory):
    document = build_sample_document(isic_dir)
    path = tmp_path_factory.mktemp("report") / "report-v1.pdf"
    digest = render_pdf(document, path)
    reader = PdfReader(path, strict=True)
    pages = [_words(page.extract_text()) for page in reader.pages]
    return {"document": document, "path": path, "digest": digest, "reader": reader, "pages": pages,
            "text": " ".join(pages)}


def test_every_table_row_of_the_json_twin_is_printed_exactly(rendered):
    tables = [b for s in rendered["document"].to_dict()["sections"] for b in s["blocks"] if b["type"] == "table"]
    assert len(tables) == 5
    for table in tables:
        assert _words(" ".join(table["columns"])) in rendered["text"]
        for raw_row, text_row in zip(table["rows"], table["rows_text"]):
            # The whole row, in column order, as one run of text: each number sits in its own row and column.
            assert _words(" ".join(text_row)) in rendered["text"], (table["caption"], raw_row)


def test_page_x_of_y_on_every_page(rendered):
    total = len(rendered["pages"])
    assert total >= 5
    for number, page in enumerate(rendered["pages"], start=1):
        assert re.findall(r"Page (\d+) of (\d+)", page) == [(str(number), str(total))]
        assert "RPT-2025-0042 · version 1 · DRAFT" in page


def test_long_table_repeats_its_header_on_every_page_it_spans(rendered):
    header = _words(" ".join(LONG_TABLE_HEADER))
    spanned = [page for page in rendered["pages"] if "generated/0" in page]
    assert len(spanned) >= 2
    for page in spanned:
        assert page.count(header) == 1


def test_fail_appears_exactly_for_the_failing_criteria(rendered):
    text = rendered["text"]
    start = text.index("Table 1. Acceptance criteria")
    for name, _value, _ci, _threshold, expected in CRITERIA:
        start = text.index(name, start)
        verdict = re.compile(r"\b(PASS|FAIL|NOT EVALUATED)\b").search(text, start)
        assert verdict.group(1) == expected, name
    # Upper-case FAIL is reserved for status cells (callouts say "Fail."), so the count is the failed criteria.
    assert text.count("FAIL") == len(FAILING) == 4
    assert text.count("PASS") == 3


def test_sections_are_bookmarked_in_order_on_the_pages_that_hold_them(rendered):
    reader = rendered["reader"]
    outline = [(item.title, reader.get_destination_page_number(item)) for item in reader.outline]
    expected = ["0 Document control"] + [f"{n} {title}" for n, title in enumerate(SECTION_TITLES, start=1)]
    assert [title for title, _ in outline] == expected
    pages = [page for _, page in outline]
    assert pages == sorted(pages) and pages[0] == 0
    for title, page in outline:
        assert title in rendered["pages"][page]
    # Document control comes first, with the provenance of the numbers.
    first = rendered["pages"][0]
    assert first.index("Document control") < first.index("Contents")
    for fact in ("Random seed: bootstrap 20250501", "Software version 4f2a9c1e7b3d", "Status DRAFT",
                 "Generated (UTC) 2025-05-01T09:30:00Z"):
        assert fact in first


def test_symbols_survive_text_extraction(rendered):
    # DejaVu is embedded with a ToUnicode map: ≤, ≥, κ and × are searchable, not mojibake.
    for snippet in ("≤ 0.020", "≥ 0.60", "Cohen's κ", "64 × 64 px", "Kynkäänniemi"):
        assert snippet in rendered["text"]


def test_every_page_renders_to_png(rendered, tmp_path):
    result = subprocess.run(["pdftoppm", "-r", "50", "-png", str(rendered["path"]), str(tmp_path / "page")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "rror" not in result.stderr  # poppler reports broken objects as "Syntax Error"/"Internal Error"
    assert len(list(tmp_path.glob("page-*.png"))) == len(rendered["pages"])


def test_no_text_runs_outside_the_margins(rendered, tmp_path):
    # pdftotext's word boxes show whether a table or a long word overflowed the frame.
    html = tmp_path / "boxes.html"
    subprocess.run(["pdftotext", "-bbox", str(rendered["path"]), str(html)], check=True, timeout=120)
    boxes = re.findall(r'<word xMin="([\d.]+)" yMin="[\d.]+" xMax="([\d.]+)" yMax="[\d.]+">([^<]*)</word>',
                       html.read_text())
    assert len(boxes) > 1000
    body = [(float(x0), float(x1), word) for x0, x1, word in boxes if word != "DRAFT"]  # the rotated watermark
    assert min(x0 for x0, _, _ in body) >= MARGIN_LEFT - 0.5
    assert max(x1 for _, x1, _ in body) <= MARGIN_LEFT + FRAME_WIDTH + 0.5 <= PAGE_WIDTH


def test_same_document_gives_identical_bytes_and_the_returned_digest(rendered, isic_dir, tmp_path):
    again = render_pdf(build_sample_document(isic_dir), tmp_path / "again.pdf")
    assert again == rendered["digest"]
    assert hashlib.sha256(rendered["path"].read_bytes()).hexdigest() == rendered["digest"]
    assert (tmp_path / "again.pdf").read_bytes() == rendered["path"].read_bytes()


def test_approved_version_has_no_draft_marks_and_names_the_approver(isic_dir, tmp_path, rendered):
    approved = build_sample_document(isic_dir, status="approved", version=2)
    digest = render_pdf(approved, tmp_path / "report-v2.pdf")
    assert digest != rendered["digest"]
    pages = [_words(page.extract_text()) for page in PdfReader(tmp_path / "report-v2.pdf").pages]
    assert not any("DRAFT" in page for page in pages)
    assert all("RPT-2025-0042 · version 2 · APPROVED" in page for page in pages)
    assert "Approved by q.lead@clinic-a.example Approved at (UTC) 2025-05-02T14:05:00Z" in pages[0]
    assert not Path(str(tmp_path / "report-v2.pdf") + ".partial").exists()


def test_awkward_content_renders_literally_and_in_place():
    document = ReportDocument(
        "R-7", 3, "approved", "A <b>title</b> & more " * 6, "2025-05-01T09:30:00+00:00", "deadbeef", {}, "me",
        approved_by="boss", approved_at_utc="2025-05-02T00:00:00Z", sections=[
            Section(0, "extra control blocks",
                    [Table(["Version", "Change"], [[1, "first draft"]], "Revision history")]),
            Section(1, "Nothing here", []),
            Section(2, "Edge cases", [
                Table(["a", "b"], [], "empty table"), Facts([]), ImageGrid("no images", []),
                Paragraph("line one\nline two <b>not bold</b> & co"),
                Chart("bar", "every value missing", {"categories": ["a", "b"], "values": [None, float("nan")]}),
                Callout("pass", "ok <fine>"),
            ]),
        ])
    pages = [_words(page.extract_text()) for page in PdfReader(io.BytesIO(render_pdf_bytes(document))).pages]
    text = " ".join(pages)
    assert "line one line two <b>not bold</b> & co" in text and "Pass. ok <fine>" in text
    # Blocks of a section numbered 0 follow the generated document-control facts, before the contents.
    assert text.index("Approved at (UTC)") < text.index("Table 1. Revision history") < text.index("Contents")
    assert "Table 2. empty table a b" in text and "Figure 1. every value missing" in text
    assert re.findall(r"Page \d+ of (\d+)", text) == [str(len(pages))] * len(pages)
