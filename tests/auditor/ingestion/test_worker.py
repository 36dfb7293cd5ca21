"""A real `celery worker` process (not eager) imports a zip that the API staged."""
from __future__ import annotations

import pytest

from auditor.models import IngestJob
from auditor.ingestion.uploads import stage_uploads
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.support.workers import wait_for, worker_pool
from tests.auditor.conftest import image_bytes, zip_bytes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker, pytest.mark.slow]


def test_worker_process_imports_a_zip(image_set, quality_user, tmp_path, settings):
    archive = zip_bytes({f"img_{i}.png": image_bytes(seed=i) for i in range(20)} | {"bad.png": b"nope"})
    job = stage_uploads(image_set, [SimpleUploadedFile("batch.zip", archive)], quality_user)

    with worker_pool(tmp_path, settings.MEDIA_ROOT) as pool:
        pool.start("w1")
        pool.send("auditor.ingest", str(job.pk))
        try:
            wait_for(lambda: IngestJob.objects.get(pk=job.pk).status in {"succeeded", "failed"}, 120, message="the import")
        except TimeoutError:
            pytest.fail("worker did not finish:\n" + pool.log("w1")[-3000:])

    job.refresh_from_db()
    assert job.status == "succeeded", job.message
    assert (job.imported, job.failed) == (20, 1), (job.message, pool.log("w1")[-2000:])
    assert image_set.images.count() == 20
    assert "auditor.ingest" in pool.log("w1") and "succeeded" in pool.log("w1")
