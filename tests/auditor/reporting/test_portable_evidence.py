"""Evidence is stored by storage name: a finished audit's media folder copied elsewhere (a restored backup, a new host)
serves every picture, chart and download; the data migration turns old absolute paths into names."""
from __future__ import annotations

import hashlib
import importlib
import json
import logging
import re
import shutil
from pathlib import Path

import pytest
from django.apps import apps
from django.core.files.storage import default_storage

from auditor.audits import detector_stages, pipeline
from auditor.audits.tasks import run_audit_task
from auditor.models import Audit, AuditResult, ImageSet, Report
from auditor.reporting import issuing
from tests.auditor.audits.test_pipeline import _subset
from tests.auditor.conftest import api_client_for
from tests.auditor.ingest_helpers import ingest_paths
from tests.web.pages import attribute_values

portable = importlib.import_module("auditor.migrations.0007_portable_evidence")


def _is_name(value: str) -> bool:
    return bool(value) and not Path(value).is_absolute()


def _stored_names(audit: Audit) -> list[str]:
    """Every file name the audit's rows and stored results hold (pairs, Grad-CAM overlays, fold models, reports)."""
    names = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                names.append(value) if key == "path" else walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for result in audit.results.all():
        walk(result.data)
    for report in audit.reports.all():
        names += [report.pdf, report.json]
    return names


@pytest.mark.django_db
@pytest.mark.slow
def test_a_copied_media_folder_serves_every_picture_and_download(
        org, quality_user, isic_dir, pad_dir, tmp_path, settings, client, django_capture_on_commit_callbacks):
    settings.DERMAUDIT_MODEL_DIR = tmp_path / "models"
    settings.DERMAUDIT_FEATURE_CACHE = tmp_path / "features"
    settings.DERMAUDIT_CROSSFIT_EPOCHS = 2
    settings.DERMAUDIT_PROBE_PERMUTATIONS = 20
    settings.DERMAUDIT_ROAD_IMAGES = 4
    reference = ImageSet.objects.create(organisation=org, name="isic-40", kind="reference")
    ingest_paths(reference, [_subset(isic_dir, tmp_path, "ref", 40, step=10)])
    generated = ImageSet.objects.create(organisation=org, name="pad-40", kind="generated")
    ingest_paths(generated, [_subset(pad_dir, tmp_path, "gen", 40, step=10)])
    audit = Audit.objects.create(organisation=org, name="portable", created_by=quality_user, generated_set=generated,
                                 reference_set=reference, criteria={"utility_gain": {"label": "benign_malignant"}})
    with django_capture_on_commit_callbacks(execute=True):
        pipeline.start_audit(audit, enqueue=lambda audit_id: run_audit_task.delay(audit_id))
    audit.refresh_from_db()
    assert audit.status == "succeeded", audit.error

    # Every stored reference is a name relative to the media storage, the JSON twin's pictures included.
    results = {r.stage: r.data for r in audit.results.all()}
    assert results["memorization"]["pairs"] and results["explanations"]["overlays"]
    assert results["detectability"]["vit"]["fold_models"]
    names = _stored_names(audit)
    assert names and all(_is_name(name) for name in names), names
    assert all(default_storage.exists(name) for name in names)
    report = audit.reports.get()
    assert re.fullmatch(rf"reports/audit-{audit.pk}/report-v1-[0-9a-f]{{16}}\.pdf", report.pdf)
    twin = json.loads(report.json_path.read_text())
    pictures = [image["path"] for s in twin["sections"] for b in s["blocks"] if b["type"] == "image_grid"
                for image in b["images"]]
    assert pictures and all(_is_name(name) for name in pictures)
    assert str(settings.MEDIA_ROOT) not in report.json_path.read_text()

    # The media folder moves (a backup restored on a new host); the database rows stay. The original is deleted.
    original = Path(settings.MEDIA_ROOT)
    restored = tmp_path / "restored" / "media"
    shutil.copytree(original, restored)
    shutil.rmtree(original)
    settings.MEDIA_ROOT = restored

    client.force_login(quality_user)
    page = client.get(f"/audits/{audit.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "cannot be read" not in html
    sources = attribute_values(html, "img", "src")
    picture_urls = [src for src in sources if "/pictures/" in src]
    chart_urls = [src for src in sources if "/charts/" in src]
    assert len(picture_urls) == len(pictures) and chart_urls
    for url, name in zip(picture_urls, pictures):
        response = client.get(url)
        assert response.status_code == 200, url
        assert b"".join(response.streaming_content) == (restored / name).read_bytes()
    for url in chart_urls:
        response = client.get(url)
        assert response.status_code == 200 and response["Content-Type"] == "image/png", url
        assert response.content.startswith(b"\x89PNG")

    api = api_client_for(quality_user)
    for which, getter in (("pdf", client.get), ("json", client.get), ("pdf", api.get), ("json", api.get)):
        prefix = "/api" if getter == api.get else ""
        response = getter(f"{prefix}/reports/{report.pk}/{which}/")
        assert response.status_code == 200, (prefix, which)
        body = b"".join(response.streaming_content)
        assert body == (restored / (report.pdf if which == "pdf" else report.json)).read_bytes()
        if which == "pdf":
            assert hashlib.sha256(body).hexdigest() == report.pdf_sha256

    # What reads evidence on the server reads it from the new place: the audit's own fold model (Grad-CAM) and the
    # pictures a new report version embeds.
    assert detector_stages._fold_inputs(audit) is not None
    again = issuing.issue_draft(audit)
    assert again.version == 2 and (restored / again.pdf).is_file() and not original.exists()


def _twin_with_picture(path: str) -> dict:
    return {"schema": "dermaudit.report/2", "sections": [{"number": 8, "title": "Memorization", "blocks": [
        {"type": "paragraph", "text": "x"},
        {"type": "image_grid", "title": "pairs", "columns": 2, "images": [{"path": path, "caption": "pair"}]}]}]}


@pytest.mark.django_db
def test_the_data_migration_turns_absolute_paths_into_names_and_back(org, quality_user, image_set, tmp_path, settings,
                                                                      caplog):
    media = Path(settings.MEDIA_ROOT)
    audit = Audit.objects.create(organisation=org, name="legacy", created_by=quality_user, generated_set=image_set,
                                 reference_set=ImageSet.objects.create(organisation=org, name="ref", kind="reference"))
    pair = media / "audits" / str(audit.pk) / "memorization" / "pair_00.png"
    moved = media / "audits" / str(audit.pk) / "gradcam" / "overlay_0.png"  # copied here from another host's media
    for file in (pair, moved):
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(b"\x89PNG picture")
    elsewhere = f"/old-host/var/media/audits/{audit.pk}/gradcam/overlay_0.png"
    outside = str(tmp_path / "somewhere-else" / "pair.png")
    folder = media / "reports" / f"audit-{audit.pk}"
    folder.mkdir(parents=True)
    (folder / "report-v1.pdf").write_bytes(b"%PDF-1.4")
    (folder / "report-v1.json").write_text(json.dumps(_twin_with_picture(str(pair))))
    report = Report.objects.create(audit=audit, version=1, pdf=str(folder / "report-v1.pdf"),
                                   json=str(folder / "report-v1.json"), pdf_sha256="0" * 64)
    stray = Report.objects.create(audit=audit, version=2, pdf="/mnt/archive/report-v2.pdf",
                                  json="/mnt/archive/report-v2.json", pdf_sha256="1" * 64)
    result = AuditResult.objects.create(audit=audit, stage="memorization", data={
        "pairs": [{"path": str(pair), "caption": "a"}, {"path": outside, "caption": "b"}],
        "explanations": {"overlays": [{"path": elsewhere}]}, "note": str(pair)})

    with caplog.at_level(logging.WARNING, logger="auditor.migrations.portable_evidence"):
        portable.forwards(apps, None)
    report.refresh_from_db()
    stray.refresh_from_db()
    result.refresh_from_db()
    names = f"reports/audit-{audit.pk}/report-v1"
    assert (report.pdf, report.json) == (f"{names}.pdf", f"{names}.json")
    assert result.data["pairs"][0]["path"] == f"audits/{audit.pk}/memorization/pair_00.png"
    assert result.data["explanations"]["overlays"][0]["path"] == f"audits/{audit.pk}/gradcam/overlay_0.png"
    assert result.data["pairs"][1]["path"] == outside  # outside MEDIA_ROOT and not here: kept, and said
    assert result.data["note"] == str(pair)  # only file references ("path") are touched
    assert (stray.pdf, stray.json) == ("/mnt/archive/report-v2.pdf", "/mnt/archive/report-v2.json")
    logged = caplog.text
    assert outside in logged and "/mnt/archive/report-v2.pdf" in logged and "not under MEDIA_ROOT" in logged
    twin = json.loads((folder / "report-v1.json").read_text())
    assert twin["sections"][0]["blocks"][1]["images"][0]["path"] == f"audits/{audit.pk}/memorization/pair_00.png"
    assert not list(folder.glob(".tmp-*"))
    portable.forwards(apps, None)  # a second run changes nothing
    result.refresh_from_db()
    assert result.data["pairs"][0]["path"] == f"audits/{audit.pk}/memorization/pair_00.png"

    portable.backwards(apps, None)
    report.refresh_from_db()
    result.refresh_from_db()
    assert report.pdf == str(media.resolve() / "reports" / f"audit-{audit.pk}" / "report-v1.pdf")
    assert result.data["pairs"][0]["path"] == str(media.resolve() / f"audits/{audit.pk}/memorization/pair_00.png")
    assert result.data["pairs"][1]["path"] == outside
    twin = json.loads((folder / "report-v1.json").read_text())
    assert twin["sections"][0]["blocks"][1]["images"][0]["path"] == str(media.resolve() / "audits" / str(audit.pk)
                                                                      / "memorization" / "pair_00.png")


@pytest.mark.django_db
def test_a_name_leading_out_of_the_media_folder_is_not_served(org, quality_user, image_set, client, settings, tmp_path):
    audit = Audit.objects.create(organisation=org, name="forged", created_by=quality_user, generated_set=image_set,
                                 reference_set=ImageSet.objects.create(organisation=org, name="ref", kind="reference"),
                                 status=Audit.Status.SUCCEEDED)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG secret")
    twin = Path(settings.MEDIA_ROOT) / "forged.json"
    twin.parent.mkdir(parents=True, exist_ok=True)
    twin.write_text(json.dumps(_twin_with_picture("../secret.png")))
    report = Report.objects.create(audit=audit, version=1, pdf="../secret.png", json="forged.json", pdf_sha256="0" * 64)
    client.force_login(quality_user)
    assert client.get(f"/reports/{report.pk}/pictures/0/").status_code == 404
    assert client.get(f"/reports/{report.pk}/pdf/").status_code == 404
    assert api_client_for(quality_user).get(f"/api/reports/{report.pk}/pdf/").status_code == 404
