"""An audit's latest report on its web page, from the report's JSON twin (the one source of the numbers).

Every Chart block is drawn by the report's own `render_chart_png`, served by `report_chart` and cached by the
chart's content; every picture of an ImageGrid block (memorisation pairs, Grad-CAM overlays) is served by
`report_picture`, which finds the file by its position in that report's JSON twin: a request never names a path.
The twin and its pictures are read by storage name through the default storage (auditor/models/storage.py), so a
copied media folder serves them all.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponse, HttpResponseNotModified
from django.shortcuts import get_object_or_404
from django.urls import reverse

from auditor.access import READ_ROLES, organisation_ids
from auditor.models import Audit, Report
from auditor.reporting import NOT_AVAILABLE, format_interval, format_number
from auditor.reporting.charts import chart_aspect, chart_width_fraction, render_chart_png
from auditor.reporting.document import block_from_dict
from auditor.web.criteria_text import plain_names
from auditor.web.views import _require
from metrics.atomic_files import write_file_atomically

WEB_CHART_WIDTH_IN = 6.4
WEB_CHART_DPI = 150
CHART_CACHE_VERSION = 1  # bump when the page's chart size or style changes
PICTURE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def readable_audits(user):
    return Audit.objects.filter(organisation_id__in=organisation_ids(user, READ_ROLES))


def latest_report(audit: Audit) -> Report | None:
    return audit.reports.order_by("-version").first()


def load_twin(report: Report) -> dict | None:
    try:
        with report.open_file("json") as file:
            return json.loads(file.read().decode("utf-8"))
    except (OSError, ValueError, SuspiciousFileOperation):  # missing, unreadable, or a name outside the media folder
        return None


def _blocks(twin: dict, kind: str) -> list[dict]:
    return [block for section in twin.get("sections", []) for block in section.get("blocks", []) if block.get("type") == kind]


def chart_blocks(twin: dict) -> list[dict]:
    return _blocks(twin, "chart")


def pictures(twin: dict) -> list[dict]:
    return [image for block in _blocks(twin, "image_grid") for image in block.get("images", [])]


# --- the page's view of the twin -------------------------------------------------------------------------------

def _n(value) -> str:
    return format_number(value, 3)


def _has_bounds(entry: dict) -> bool:
    return "lower" in entry and "upper" in entry


def chart_table(block: dict) -> dict:
    """The chart's numbers as a table under it (the text alternative of the picture), formatted like the report's."""
    kind, data = block["kind"], block["data"]
    value_name = block.get("y_label") or "value"
    if kind == "bar":
        columns = ["", value_name] + (["95% CI"] if _has_bounds(data) else [])
        rows = [[category, _n(value)] + ([format_interval(low, high)] if _has_bounds(data) else [])
                for category, value, low, high in zip(data["categories"], data["values"], data.get("lower", data["values"]),
                                                      data.get("upper", data["values"]))]
    elif kind == "grouped_bar":
        columns = [""]
        for series in data["series"]:
            columns += [series["name"]] + ([f"{series['name']} 95% CI"] if _has_bounds(series) else [])
        rows = []
        for index, category in enumerate(data["categories"]):
            row = [category]
            for series in data["series"]:
                row.append(_n(series["values"][index]))
                if _has_bounds(series):
                    row.append(format_interval(series["lower"][index], series["upper"][index]))
            rows.append(row)
    elif kind == "line":
        bounded = any(_has_bounds(series) for series in data["series"])
        columns = ["series", block.get("x_label") or "x", value_name] + (["95% band"] if bounded else [])
        rows = [[series["name"], _n(x), _n(y)] + ([format_interval(series["lower"][i], series["upper"][i])
                                                    if _has_bounds(series) else NOT_AVAILABLE] if bounded else [])
                for series in data["series"] for i, (x, y) in enumerate(zip(series["x"], series["y"]))]
    elif kind == "roc":
        columns = ["curve", "false positive rate", "true positive rate"]
        rows = [[curve["name"], _n(fpr), _n(tpr)] for curve in data["curves"] for fpr, tpr in zip(curve["fpr"], curve["tpr"])]
    elif kind == "distribution_vs_target":
        columns = ["", data.get("observed_label") or "observed", data.get("target_label") or "target"]
        rows = [[category, _n(observed), _n(target)]
                for category, observed, target in zip(data["categories"], data["observed"], data["target"])]
    else:
        columns, rows = [], []
    notes = []
    reference = data.get("reference")
    if reference and reference.get("value") is not None:
        notes.append(f"Dashed line: {reference.get('label') or 'reference'} = {_n(reference['value'])}")
    for curve in data.get("curves", []) if kind == "roc" else []:
        if curve.get("auc") is not None:
            notes.append(f"{curve['name']}: AUC {_n(curve['auc'])}")
    return {"columns": columns, "rows": rows, "notes": notes}


def _picture_details(results: dict) -> dict[str, dict]:
    """Alt text and caption facts for the audit's own pictures, by path (memorisation pairs, Grad-CAM overlays)."""
    details = {}
    for pair in (results.get("memorization") or {}).get("pairs", []):
        details[pair["path"]] = {
            "kind": "pair",
            "alt": f"Generated image {pair.get('generated', '')} (left) beside its closest training image "
                   f"{pair.get('training', '')} (right)",
            "left": pair.get("generated"), "right": pair.get("training"),
        }
    for overlay in (results.get("explanations") or {}).get("overlays", []):
        details[overlay["path"]] = {
            "kind": "gradcam",
            "alt": f"A {overlay['label']} image ({overlay['rank'].replace('_', ' ')}) on the left and its Grad-CAM heat map "
                   f"on the right; P(synthetic) {_n(overlay['probability_synthetic'])}",
            "label": overlay["label"], "rank": overlay["rank"].replace("_", " "),
            "probability": _n(overlay["probability_synthetic"]),
        }
    return details


def page_sections(report: Report, twin: dict, criteria: list[dict], results: dict) -> list[dict]:
    """The twin's sections, block by block, with URLs for charts and pictures and code names said in plain words."""
    details = _picture_details(results)
    chart_index = picture_index = 0
    sections = []
    for section in twin.get("sections", []):
        blocks = []
        for block in section.get("blocks", []):
            kind = block.get("type")
            if kind == "chart":
                width_in = WEB_CHART_WIDTH_IN * chart_width_fraction(block["kind"])
                blocks.append({**block, "url": reverse("web:report-chart", args=[report.pk, chart_index]),
                               "table": chart_table(block), "number": chart_index + 1,
                               "width": round(width_in * WEB_CHART_DPI), "height": round(width_in * chart_aspect(block["kind"]) * WEB_CHART_DPI)})
                chart_index += 1
            elif kind == "image_grid":
                figures = []
                for image in block.get("images", []):
                    detail = details.get(image["path"], {})
                    figures.append({**detail, "caption": image.get("caption", ""),
                                    "alt": detail.get("alt") or f"{block['title']}: {image.get('caption', '')}",
                                    "url": reverse("web:report-picture", args=[report.pk, picture_index])})
                    picture_index += 1
                blocks.append({**block, "figures": figures})
            elif kind == "table":
                blocks.append({**block, "columns": [plain_names(c, criteria) for c in block["columns"]],
                               "cells": [[plain_names(cell, criteria) for cell in row] for row in block.get("rows_text", [])]})
            elif kind == "facts":
                blocks.append({**block, "rows": [[key, plain_names(value, criteria)] for key, value in block["rows"]]})
            elif kind in ("paragraph", "callout"):
                blocks.append({**block, "lines": plain_names(block["text"], criteria).split("\n")})
        sections.append({"number": section["number"], "title": section["title"], "blocks": blocks})
    return sections


# --- the files ---------------------------------------------------------------------------------------------------

def _report_and_twin(user, pk) -> tuple[Report, dict]:
    _require(user, READ_ROLES)
    report = get_object_or_404(Report.objects.filter(audit__in=readable_audits(user)), pk=pk)
    twin = load_twin(report)
    if twin is None:
        raise Http404("This report's JSON twin cannot be read.")
    return report, twin


def _not_modified(request, etag: str) -> bool:
    return etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]


@login_required
def report_chart(request, pk, index: int):
    _, twin = _report_and_twin(request.user, pk)
    charts = chart_blocks(twin)
    if index >= len(charts):
        raise Http404("No such chart in this report.")
    block = charts[index]
    width_in = WEB_CHART_WIDTH_IN * chart_width_fraction(block["kind"])
    key = hashlib.sha256(json.dumps({"chart": block, "width_in": width_in, "dpi": WEB_CHART_DPI, "v": CHART_CACHE_VERSION},
                                    sort_keys=True).encode()).hexdigest()
    etag = f'"{key[:32]}"'
    if _not_modified(request, etag):
        response = HttpResponseNotModified()
    else:
        path = Path(settings.MEDIA_ROOT) / "web-cache" / "charts" / key[:2] / f"{key}.png"
        if not path.is_file() or path.stat().st_size == 0:
            write_file_atomically(path, render_chart_png(block_from_dict(block), width_in, dpi=WEB_CHART_DPI), durable=False)
        response = HttpResponse(path.read_bytes(), content_type="image/png")
    response["ETag"] = etag
    response["Cache-Control"] = "private, max-age=86400"
    return response


@login_required
def report_picture(request, pk, index: int):
    _, twin = _report_and_twin(request.user, pk)
    listed = pictures(twin)
    if index >= len(listed):
        raise Http404("No such picture in this report.")
    name = str(listed[index].get("path") or "")
    suffix = Path(name).suffix.lower()
    # The name comes from the stored twin, not the request; still, only the media storage is ever served (the
    # storage refuses a name that leads out of it).
    try:
        if suffix not in PICTURE_TYPES or not default_storage.exists(name):
            raise Http404("This picture is not available.")
        size, modified = default_storage.size(name), default_storage.get_modified_time(name)
    except (SuspiciousFileOperation, OSError):
        raise Http404("This picture is not available.") from None
    etag = f'"{size:x}-{int(modified.timestamp() * 1_000_000):x}"'
    response = HttpResponseNotModified() if _not_modified(request, etag) else \
        FileResponse(default_storage.open(name, "rb"), content_type=PICTURE_TYPES[suffix])
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"
    return response
