"""Celery tasks: thin wrappers that load a study and call the service (eager under the embedded default)."""
from __future__ import annotations

from celery import shared_task

from .blinding import prepare_study_images
from .models import Study


@shared_task(acks_late=True, name="reader_study.prepare_images")
def prepare_study_images_task(study_id: int) -> dict:
    """Render (or find cached) every case's blinded image; opening the study then has nothing left to do."""
    study = Study.objects.get(pk=study_id)
    return {"study": study_id, "padded_image_bytes": prepare_study_images(study)}


@shared_task(acks_late=True, name="reader_study.compute_results")
def compute_study_results_task(study_id: int) -> dict:
    """Compute and store a closed study's statistics (idempotent: a stored result is kept)."""
    from .results import stored_results  # imported here: web processes that only queue this skip pandas/scipy

    study = Study.objects.get(pk=study_id)
    result = stored_results(study)
    return {"study": study_id, "answers_sha256": result.answers_sha256}
