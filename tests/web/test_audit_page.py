"""An audit's page shows what its report shows: plain-language verdicts, every chart, the memorisation pairs and the
Grad-CAM gallery, with the same numbers as the report's JSON twin."""
from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image as PILImage

from auditor.models import Audit, Report
from auditor.reporting.charts import chart_width_fraction, render_chart_png
from auditor.reporting.document import block_from_dict
from auditor.web import report_views
from auditor.reporting.criteria import CRITERIA
from tests.web.pages import attribute_values, table, tables, visible_text
from tests.web.worlds import audit_sets, finished_audit

pytestmark = pytest.mark.django_db
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@pytest.fixture
def sets(org, isic_dir, pad_dir, tmp_path):
    return audit_sets(org, isic_dir, pad_dir, tmp_path)


@pytest.fixture
def audit(org, quality_user, sets) -> Audit:
    return finished_audit(org, quality_user, sets)


def twin_of(audit: Audit) -> dict:
    return json.loads(audit.reports.order_by("-version").first().json_path.read_text())


def blocks(twin: dict, kind: str) -> list[dict]:
    return [b for s in twin["sections"] for b in s["blocks"] if b["type"] == kind]


def page_of(client, user, audit: Audit) -> str:
    client.force_login(user)
    response = client.get(f"/audits/{audit.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def criteria_rows(html: str) -> list[list[str]]:
    """The criteria table's header and one row per criterion (each criterion's controls follow it in a one-cell row)."""
    return [row for row in table(html, id="criteria") if len(row) > 1]


def test_criteria_are_named_in_plain_language(client, quality_user, audit):
    html = page_of(client, quality_user, audit)
    text = visible_text(html)
    for name, criterion in CRITERIA.items():
        assert criterion.title in text and criterion.unit in text, name
        if "_" in name:
            assert name not in text, f"code name {name} shown on the page"
    header = criteria_rows(html)[0]
    assert header == ["Criterion", "Value", "95% CI", "Threshold", "Result"]
    assert "<dt>Feature precision</dt><dd>fp32</dd>" in html  # the recorded precision (the world's audit: fp32)


def test_the_numbers_on_the_page_are_the_json_twins(client, quality_user, audit):
    html, twin = page_of(client, quality_user, audit), twin_of(audit)
    summary = next(b for b in blocks(twin, "table") if b["status_column"] is not None)
    columns = summary["columns"]
    ci, threshold, status = columns.index("95% CI"), columns.index("Threshold"), summary["status_column"]
    shown = criteria_rows(html)[1:]
    assert len(shown) == len(summary["rows_text"])
    for row, expected in zip(shown, summary["rows_text"]):
        value_cell, ci_cell, threshold_cell, status_cell = row[1:5]
        assert (value_cell, ci_cell, threshold_cell) == (expected[1], expected[ci], expected[threshold])
        assert status_cell.split(" ")[0] == expected[status]

    # Every table of the report, cell by cell (names of criteria may read in plain words; numbers never change).
    report_tables = [t["rows"] for t in tables(html) if "report-table" in (t["attrs"].get("class") or "")]
    twin_tables = blocks(twin, "table")
    assert len(report_tables) == len(twin_tables)
    for shown_rows, block in zip(report_tables, twin_tables):
        assert len(shown_rows) == 1 + len(block["rows_text"]), block["caption"]
        for shown_row, twin_row in zip(shown_rows[1:], block["rows_text"]):
            for shown_cell, twin_cell in zip(shown_row, twin_row):
                if any(ch.isdigit() for ch in twin_cell):
                    assert shown_cell == twin_cell, block["caption"]

    # Every chart's numbers: the table under each chart holds exactly the chart data of the twin (3 decimals).
    chart_tables = [t["rows"] for t in tables(html) if "chart-table" in (t["attrs"].get("class") or "")]
    charts = blocks(twin, "chart")
    assert len(chart_tables) == len(charts) == 3  # FD beside the floor and baselines, phototype bars, ROC
    for rows, chart in zip(chart_tables, charts):
        shown_numbers = sorted(float(n) for row in rows[1:] for cell in row[1:] for n in NUMBER.findall(cell))
        assert shown_numbers == sorted(round(v, 3) for v in _chart_numbers(chart["data"])), chart["title"]
    text = visible_text(html)
    fidelity_chart = charts[0]["data"]
    assert f"real-vs-real floor = {fidelity_chart['reference']['value']:.3f}" in text
    for curve in charts[2]["data"]["curves"]:  # the ROC of the audit's own cross-fitted detectors
        assert f"{curve['name']}: AUC {curve['auc']:.3f}" in text


def _chart_numbers(data) -> list[float]:
    keys = {"values", "lower", "upper", "x", "y", "fpr", "tpr", "observed", "target"}
    found = []

    def walk(node, key=None):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            for item in node:
                walk(item, key)
        elif key in keys and isinstance(node, (int, float)) and not isinstance(node, bool):
            found.append(float(node))

    walk(data)
    return found


def test_charts_are_drawn_by_the_report_renderer_and_cached_by_content(client, quality_user, audit, settings, monkeypatch):
    html, twin = page_of(client, quality_user, audit), twin_of(audit)
    sources = [src for src in attribute_values(html, "img", "src") if "/charts/" in src]
    charts = blocks(twin, "chart")
    assert len(sources) == len(charts)
    for source, chart in zip(sources, charts):
        response = client.get(source)
        assert response.status_code == 200 and response["Content-Type"] == "image/png"
        width_in = report_views.WEB_CHART_WIDTH_IN * chart_width_fraction(chart["kind"])
        assert response.content == render_chart_png(block_from_dict(chart), width_in, dpi=report_views.WEB_CHART_DPI)
        with PILImage.open(io.BytesIO(response.content)) as picture:
            assert picture.width == round(width_in * report_views.WEB_CHART_DPI)
        assert client.get(source, HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304
    assert len(list((Path(settings.MEDIA_ROOT) / "web-cache" / "charts").rglob("*.png"))) == len(charts)

    def refuse(*args, **kwargs):
        raise AssertionError("a cached chart was drawn again")

    monkeypatch.setattr(report_views, "render_chart_png", refuse)
    assert client.get(sources[0]).status_code == 200
    report = audit.reports.get()
    assert client.get(f"/reports/{report.pk}/charts/{len(charts)}/").status_code == 404


def test_pairs_and_grad_cam_maps_come_only_from_the_reports_list(client, quality_user, audit, settings, tmp_path):
    html, twin = page_of(client, quality_user, audit), twin_of(audit)
    listed = [image for block in blocks(twin, "image_grid") for image in block["images"]]
    sources = [src for src in attribute_values(html, "img", "src") if "/pictures/" in src]
    assert len(sources) == len(listed) > 0
    for source, image in zip(sources, listed):
        response = client.get(source)
        assert response.status_code == 200
        assert b"".join(response.streaming_content) == Path(image["path"]).read_bytes()

    results = {r.stage: r.data for r in audit.results.all()}
    alts = attribute_values(html, "img", "alt")
    for pair in results["memorization"]["pairs"]:
        assert any(pair["generated"] in alt and pair["training"] in alt and "(left)" in alt for alt in alts)
    text = visible_text(html)
    for overlay in results["explanations"]["overlays"]:
        probability = f"{overlay['probability_synthetic']:.3f}"
        assert f"P(synthetic) = {probability}" in text and probability in overlay["caption"]
    assert text.count("right: its Grad-CAM map") == len(results["explanations"]["overlays"])

    # A report whose twin lists a file outside the media folder (or a missing one) serves nothing.
    report = audit.reports.get()
    tampered = json.loads(report.json_path.read_text())
    grid = next(b for s in tampered["sections"] for b in s["blocks"] if b["type"] == "image_grid")
    outside = tmp_path / "outside.png"
    shutil.copy(grid["images"][0]["path"], outside)
    grid["images"][0]["path"] = str(outside)
    grid["images"][1]["path"] = str(Path(settings.MEDIA_ROOT) / "audits" / "missing.png")
    forged = Path(settings.MEDIA_ROOT) / "forged.json"
    forged.write_text(json.dumps(tampered))
    second = Report.objects.create(audit=audit, version=2, pdf=report.pdf, json=str(forged), pdf_sha256=report.pdf_sha256)
    assert client.get(f"/reports/{second.pk}/pictures/0/").status_code == 404
    assert client.get(f"/reports/{second.pk}/pictures/1/").status_code == 404
    assert client.get(f"/reports/{second.pk}/pictures/2/").status_code == 200
    assert client.get(f"/reports/{second.pk}/pictures/{len(listed)}/").status_code == 404


def test_the_criteria_table_shows_the_evaluations_own_titles_and_controls(client, quality_user, audit, monkeypatch):
    from auditor.reporting.criteria import evaluate_criteria
    from auditor.web import audit_views

    def with_controls(audit, results=None):
        rows = evaluate_criteria(audit, results)
        rows[0].update({
            "title": "Distance to real images, relative to real-vs-real", "explanation": "One line from the evaluation.",
            "unit": "ratio to the floor",
            "controls": [
                {"kind": "negative", "label": "reference half vs reference half", "value_text": "1.020", "ci_text": "[0.950, 1.100]",
                 "requirement": "≤ 1.5", "ok": True, "reason": ""},
                {"kind": "positive", "label": "copy baseline", "value_text": "n/a", "ci_text": "n/a", "requirement": "≥ 3.0",
                 "ok": None, "reason": "no copy baseline in this audit"},
                {"kind": "positive", "label": "baseline GAN", "value_text": "0.800", "ci_text": "[0.700, 0.900]",
                 "requirement": "≥ 3.0", "ok": False, "reason": ""},
            ]})
        return rows

    monkeypatch.setattr(audit_views, "evaluate_criteria", with_controls)
    text = visible_text(page_of(client, quality_user, audit))
    assert "Distance to real images, relative to real-vs-real" in text and "One line from the evaluation." in text
    assert "Unit: ratio to the floor" in text and CRITERIA["fd_upper_ci_over_floor"].title not in text.split("Report v1")[0]
    assert "Negative control: reference half vs reference half: 1.020 [0.950, 1.100]; required ≤ 1.5 — met" in text
    assert "Positive control: copy baseline: n/a; required ≥ 3.0 — not measured (no copy baseline in this audit)" in text
    assert "Positive control: baseline GAN: 0.800 [0.700, 0.900]; required ≥ 3.0 — not met" in text


def test_a_draft_lists_its_thresholds_in_plain_language(client, quality_user, org, sets):
    draft = Audit.objects.create(organisation=org, name="draft", generated_set=sets["generated"], reference_set=sets["reference"],
                                 criteria={"reader_auc": {"enabled": True}})
    html = page_of(client, quality_user, draft)
    rows = criteria_rows(html)
    assert rows[0] == ["Criterion", "Threshold", "Used"]
    used = {row[0]: row[2] for row in rows[1:]}
    assert [used[title] for title in used if title.startswith(CRITERIA["reader_auc"].title)] == ["yes"]
    assert [used[title] for title in used if title.startswith(CRITERIA["detectability"].title)] == ["yes"]  # on by default
    assert 'id="run-audit"' in html and 'id="report"' not in html
    assert "<dt>Feature precision</dt><dd>the deployment's default, recorded when the audit starts</dd>" in html


def test_an_unreadable_twin_is_said_not_hidden(client, quality_user, audit):
    report = audit.reports.get()
    report.json_path.unlink()
    html = page_of(client, quality_user, audit)
    assert "cannot be read" in html and 'id="criteria"' in html
    assert client.get(f"/reports/{report.pk}/charts/0/").status_code == 404
