"""REST API: image sets, uploads (multipart files and zips), images, errors, job progress, schema."""
from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage

from auditor.models import ImageSet

from tests.auditor.conftest import api_client_for, image_bytes, zip_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def upload(django_capture_on_commit_callbacks):
    """POST files to the upload endpoint; the import task runs (eagerly) when the request's transaction commits."""

    def post(client, image_set_id: int, files: dict[str, bytes]):
        payload = {"files": [SimpleUploadedFile(name, data) for name, data in files.items()]}
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(f"/api/image-sets/{image_set_id}/upload/", payload, format="multipart")

    return post


def test_create_list_filter_and_paginate(quality_client, org):
    created = quality_client.post("/api/image-sets/", {"name": "gan-v1", "kind": "generated", "generator_name": "StyleGAN2",
                                                        "generator_version": "1.0", "intended_use": "teaching"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["organisation"] == org.pk and created.json()["created_by"] == "quality-a"
    for i in range(55):
        ImageSet.objects.create(organisation=org, name=f"ref-{i:02d}", kind="reference")

    first = quality_client.get("/api/image-sets/").json()
    assert first["count"] == 56 and len(first["results"]) == 50 and first["next"]
    assert quality_client.get("/api/image-sets/?kind=generated").json()["count"] == 1
    assert quality_client.get("/api/image-sets/?name=REF-0").json()["count"] == 10
    duplicate = quality_client.post("/api/image-sets/", {"name": "gan-v1", "kind": "generated"}, format="json")
    assert duplicate.status_code == 400 and "name" in duplicate.json()
    bad_kind = quality_client.post("/api/image-sets/", {"name": "x", "kind": "fake"}, format="json")
    assert bad_kind.status_code == 400 and "kind" in bad_kind.json()


def test_upload_files_and_zip_then_read_back_everything(quality_client, image_set, upload):
    labels = b"file,diagnosis,fitzpatrick,acquisition,patient_id\nimages/a.png,MEL,5,clinical,P1\nb.jpg,NEV,9,clinical,P2\n"
    archive = zip_bytes({"images/a.png": image_bytes(seed=1), "b.jpg": image_bytes("JPEG", seed=2), "labels.csv": labels,
                         "broken.png": b"\x89PNG\r\n\x1a\n broken"})
    response = upload(quality_client, image_set.pk, {"batch.zip": archive, "c.png": image_bytes(seed=3), "empty.png": b""})
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "pending"  # the import runs as a task; the client polls the job

    job = quality_client.get(f"/api/ingest-jobs/{response.json()['id']}/").json()
    assert (job["status"], job["total"], job["imported"], job["failed"], job["progress"]) == ("succeeded", 5, 3, 3, 1.0)
    assert job["message"] == "3 imported, 0 duplicates, 0 already present, 3 errors"

    detail = quality_client.get(f"/api/image-sets/{image_set.pk}/").json()
    assert detail["image_count"] == 3 and len(detail["manifest_sha256"]) == 64
    assert detail["label_counts"]["diagnosis"] == {"MEL": 1, "NEV": 1, "unlabelled": 1}
    assert detail["label_counts"]["fitzpatrick"] == {"5": 1, "unlabelled": 2}
    assert detail["ingest_error_count"] == 3

    errors = quality_client.get(f"/api/ingest-errors/?image_set={image_set.pk}").json()["results"]
    assert {e["file_name"]: e["reason"] for e in errors} == {
        "labels.csv": "labels.csv line 3: fitzpatrick '9' is not an integer 1-6; left unlabelled",
        "batch.zip:broken.png": errors[[e["file_name"] for e in errors].index("batch.zip:broken.png")]["reason"],
        "empty.png": "empty file (0 bytes)",
    }

    images = quality_client.get(f"/api/images/?image_set={image_set.pk}").json()["results"]
    assert sorted(i["original_name"] for i in images) == ["b.jpg", "c.png", "images/a.png"]
    a = next(i for i in images if i["original_name"] == "images/a.png")
    assert (a["diagnosis"], a["fitzpatrick"], a["acquisition"], a["extra_labels"]) == ("MEL", 5, "clinical", {"patient_id": "P1"})
    fetched = quality_client.get(f"/api/images/{a['id']}/file/")
    assert fetched.status_code == 200 and fetched["Content-Type"] == "image/png"
    body = b"".join(fetched.streaming_content)
    assert PILImage.open(io.BytesIO(body)).size == (32, 24)


def test_upload_without_files_is_a_clear_400(quality_client, image_set):
    response = quality_client.post(f"/api/image-sets/{image_set.pk}/upload/", {}, format="multipart")
    assert response.status_code == 400 and "files" in response.json()


def test_upload_over_the_size_cap_is_refused_and_nothing_stored(quality_client, image_set, settings, upload):
    settings.DERMAUDIT_MAX_UPLOAD_BYTES = 1000
    response = upload(quality_client, image_set.pk, {"a.png": image_bytes(size=(64, 64))})
    assert response.status_code == 413 and "over the limit" in response.json()["detail"]
    assert image_set.images.count() == 0 and image_set.ingest_jobs.count() == 0


def test_media_write_failure_gives_a_clear_error_and_stores_nothing(quality_client, image_set, settings, tmp_path, upload):
    blocked = tmp_path / "read-only-media"
    blocked.mkdir()
    (blocked / "staging").write_text("a file where a folder must go")  # every write under it fails
    settings.MEDIA_ROOT = blocked
    response = upload(quality_client, image_set.pk, {"a.png": image_bytes()})
    assert response.status_code == 507
    assert "could not store the upload" in response.json()["detail"]
    assert image_set.images.count() == 0 and image_set.ingest_jobs.count() == 0


def test_delete_removes_set_and_unshared_blobs(quality_client, org, image_set, upload):
    other = ImageSet.objects.create(organisation=org, name="other", kind="reference")
    shared, own = image_bytes(seed=10), image_bytes(seed=11)
    assert upload(quality_client, image_set.pk, {"shared.png": shared, "own.png": own}).status_code == 202
    assert upload(quality_client, other.pk, {"shared.png": shared}).status_code == 202
    from tests.auditor.ingest_helpers import stored_blob_files

    assert len(stored_blob_files()) == 2
    assert quality_client.delete(f"/api/image-sets/{image_set.pk}/").status_code == 204
    assert not ImageSet.objects.filter(pk=image_set.pk).exists()
    assert len(stored_blob_files()) == 1  # the blob the other set still uses stays
    assert quality_client.get(f"/api/images/?image_set={other.pk}").json()["count"] == 1


def test_openapi_schema_and_docs(quality_client):
    schema = quality_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in ["/api/image-sets/", "/api/image-sets/{id}/upload/", "/api/images/{id}/file/", "/api/ingest-jobs/{id}/", "/api/ingest-errors/"]:
        assert path in paths
    docs = quality_client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower() and b"cdn" not in docs.content.lower()


def test_token_endpoint_issues_tokens_and_is_rate_limited(quality_user, settings):
    from django.core.cache import cache
    from rest_framework.test import APIClient

    cache.clear()
    client = APIClient()
    ok = client.post("/api/token/", {"username": "quality-a", "password": "correct-horse-battery"}, format="json")
    assert ok.status_code == 200 and len(ok.json()["token"]) == 40
    token_client = api_client_for(quality_user)
    assert token_client.get("/api/image-sets/").status_code == 200
    statuses = [client.post("/api/token/", {"username": "quality-a", "password": "wrong"}, format="json").status_code for _ in range(12)]
    assert statuses[:9] == [400] * 9 and statuses[-1] == 429
    cache.clear()


def test_a_set_used_by_an_audit_cannot_be_deleted(quality_client, org, image_set):
    from auditor.models import Audit

    reference = ImageSet.objects.create(organisation=org, name="ref", kind="reference")
    Audit.objects.create(organisation=org, name="a1", generated_set=image_set, reference_set=reference)
    response = quality_client.delete(f"/api/image-sets/{reference.pk}/")
    assert response.status_code == 409 and "audit a1" in response.json()["detail"]
    assert ImageSet.objects.filter(pk=reference.pk).exists()
