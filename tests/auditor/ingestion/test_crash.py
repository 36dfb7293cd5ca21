"""A crash half-way leaves no half-registered image, and a retry completes without storing anything twice."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from django.core.files.storage import default_storage

from auditor.ingestion import importer
from auditor.models import IngestJob
from auditor.ingestion.tasks import ingest_task

from tests.auditor.conftest import image_bytes, zip_bytes
from tests.auditor.ingest_helpers import stored_blob_files

pytestmark = pytest.mark.django_db

N_IMAGES = 150


@pytest.fixture
def big_zip(tmp_path) -> Path:
    path = tmp_path / "batch.zip"
    path.write_bytes(zip_bytes({f"img_{i:03d}.png": image_bytes(size=(24, 24), seed=i) for i in range(N_IMAGES)}))
    return path


def _assert_every_row_is_complete(image_set) -> None:
    for image in image_set.images.all():
        data = Path(default_storage.path(image.file)).read_bytes()
        assert hashlib.sha256(data).hexdigest() == image.sha256


def test_crash_mid_batch_then_retry(image_set, big_zip, monkeypatch):
    real_store = importer.store_blob
    calls = {"n": 0}

    def crashing_store(name: str, data: bytes, **kwargs):
        calls["n"] += 1
        if calls["n"] == 100:  # in the middle of the second chunk: some blobs written, their rows not yet
            raise OSError("simulated crash")
        return real_store(name, data, **kwargs)

    monkeypatch.setattr(importer, "store_blob", crashing_store)
    job = IngestJob.objects.create(image_set=image_set, source="batch.zip", source_paths=[str(big_zip)])
    with pytest.raises(OSError, match="simulated crash"):
        ingest_task(str(job.pk))

    job.refresh_from_db()
    assert job.status == IngestJob.Status.FAILED and "simulated crash" in job.message
    assert image_set.images.count() == importer.CHUNK_SIZE  # the first chunk, whole; nothing of the second
    _assert_every_row_is_complete(image_set)
    assert len(stored_blob_files()) == 99  # 35 blobs of the interrupted chunk wait, unreferenced

    monkeypatch.setattr(importer, "store_blob", real_store)
    ingest_task(str(job.pk))

    job.refresh_from_db()
    assert job.status == IngestJob.Status.SUCCEEDED
    assert (job.imported, job.skipped) == (N_IMAGES - importer.CHUNK_SIZE, importer.CHUNK_SIZE)
    assert image_set.images.count() == N_IMAGES
    _assert_every_row_is_complete(image_set)
    blobs = stored_blob_files()
    assert len(blobs) == N_IMAGES  # the retry reused the orphans instead of writing copies
    assert not any(p.name.startswith(".tmp-") for p in blobs)


def test_blob_write_is_atomic_on_failure(tmp_path, settings, monkeypatch):
    settings.MEDIA_ROOT = tmp_path / "media"
    name = importer.blob_name("ab" * 32, ".png")

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(importer.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        importer.store_blob(name, b"x" * 1000)
    folder = Path(default_storage.path(name)).parent
    assert list(folder.iterdir()) == []  # neither the target nor a temporary file stays behind
