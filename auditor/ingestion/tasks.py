"""Celery task of the ingestion domain: import a staged upload (thin: load the job, call the importer)."""
from __future__ import annotations

from pathlib import Path

from celery import shared_task

from auditor.ingestion.importer import mark_failed, remove_staging, run_ingest
from auditor.models import IngestJob


@shared_task(bind=True, acks_late=True, name="auditor.ingest")
def ingest_task(self, job_id: str) -> dict:
    job = IngestJob.objects.select_related("image_set").get(pk=job_id)
    if job.status == IngestJob.Status.SUCCEEDED:
        return {"job": job_id, "status": job.status}  # redelivered after success: nothing to do
    try:
        run_ingest(job, [Path(p) for p in job.source_paths])
    except Exception as exc:
        mark_failed(job, f"import failed: {type(exc).__name__}: {exc}. Images already registered stay; "
                         "re-running the import adds only what is missing.")
        raise
    remove_staging(job)
    return {"job": job_id, "status": job.status, "imported": job.imported}
