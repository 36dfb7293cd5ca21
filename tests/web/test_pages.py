"""Web pages with the Django test client: login, image sets, upload, errors, roles."""
from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from auditor.models import ImageSet, Role
from tests.auditor.conftest import image_bytes, make_user, zip_bytes

pytestmark = pytest.mark.django_db


def test_login_page_and_redirects(client, quality_user):
    assert client.get("/sets/").status_code == 302
    page = client.get("/login/")
    assert page.status_code == 200 and b"Log in" in page.content
    response = client.post("/login/", {"username": "quality-a", "password": "correct-horse-battery"})
    assert response.status_code == 302
    assert client.get("/").url == "/sets/"


def test_create_upload_and_see_errors(client, quality_user, django_capture_on_commit_callbacks):
    client.force_login(quality_user)
    created = client.post("/sets/", {"name": "web batch", "kind": "generated", "intended_use": "teaching"})
    image_set = ImageSet.objects.get(name="web batch")
    assert created.url == f"/sets/{image_set.pk}/"
    archive = zip_bytes({"a.png": image_bytes(seed=1), "b.png": image_bytes(seed=1), "c.txt.png": b"text"})
    with django_capture_on_commit_callbacks(execute=True):
        upload = client.post(f"/sets/{image_set.pk}/upload/", {"files": [SimpleUploadedFile("w.zip", archive)]})
    assert upload.status_code == 202
    status = client.get(upload.json()["status_url"]).json()
    assert (status["status"], status["imported"], status["duplicates"], status["failed"]) == ("succeeded", 1, 1, 1)
    page = client.get(f"/sets/{image_set.pk}/").content.decode()
    assert "w.zip:c.txt.png" in page and "not an image file" in page
    assert "b.png" in page and image_set.images.get().original_name in page


def test_developer_sees_but_cannot_upload(client, org, image_set):
    developer = make_user("dev", org, Role.DEVELOPER)
    client.force_login(developer)
    page = client.get(f"/sets/{image_set.pk}/")
    assert page.status_code == 200 and b'id="upload-form"' not in page.content
    assert client.post("/sets/", {"name": "x", "kind": "generated"}).status_code == 403


def test_duplicate_name_is_a_form_error_not_a_crash(client, quality_user, image_set):
    client.force_login(quality_user)
    response = client.post("/sets/", {"name": image_set.name, "kind": "generated"})
    assert response.status_code == 200 and b"already exists" in response.content


def test_security_headers(client, quality_user):
    client.force_login(quality_user)
    response = client.get("/sets/")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


@pytest.mark.slow
def test_train_a_generator_from_the_set_page(client, quality_user, org, pad_dir, settings, tmp_path, django_capture_on_commit_callbacks):
    from auditor.models import GeneratorRun
    from tests.auditor.ingest_helpers import ingest_paths

    settings.DERMAUDIT_MODEL_DIR = tmp_path / "models"
    reference = ImageSet.objects.create(organisation=org, name="pad", kind="reference")
    ingest_paths(reference, [pad_dir / "images"])
    client.force_login(quality_user)
    page = client.get(f"/sets/{reference.pk}/").content.decode()
    assert 'id="train-form"' in page

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/sets/{reference.pk}/train/", {"kind": "vae", "minutes": 0.1, "image_size": 32, "seed": 1})
    run = GeneratorRun.objects.get()
    assert response.url == f"/generators/{run.pk}/"
    run.refresh_from_db()
    assert run.status == "succeeded" and run.checkpoint_sha256
    detail = client.get(response.url).content.decode()
    assert run.checkpoint_sha256 in detail and "Sample a baseline set" in detail
    sampled = client.post(f"/generators/{run.pk}/sample/", {"n": 5, "seed": 3})
    baseline = ImageSet.objects.get(kind="baseline")
    assert sampled.url == f"/sets/{baseline.pk}/" and baseline.images.count() == 5
