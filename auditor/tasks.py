"""Celery tasks: thin wrappers that load rows and call the importer/pipeline."""
from __future__ import annotations

from pathlib import Path

from celery import shared_task

from .importer import mark_failed, remove_staging, run_ingest
from .models import IngestJob


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


@shared_task(bind=True, acks_late=True, name="auditor.train_generator")
def train_generator_task(self, run_id: int) -> dict:
    from django.utils import timezone

    from .generators import train_generator
    from .models import GeneratorRun

    run = GeneratorRun.objects.select_related("reference_set").get(pk=run_id)
    if run.status in {"succeeded", "cancelled"}:
        return {"run": run_id, "status": run.status}
    try:
        run = train_generator(run)
    except Exception as exc:
        GeneratorRun.objects.filter(pk=run_id).update(status="failed", message=f"{type(exc).__name__}: {exc}",
                                                      finished_at=timezone.now())
        raise
    return {"run": run_id, "status": run.status, "checkpoint_sha256": run.checkpoint_sha256}


@shared_task(bind=True, acks_late=True, name="auditor.run_audit")
def run_audit_task(self, audit_id: int) -> dict:
    """Fan the per-image chunks out to the workers (or continue straight to the set-level stages)."""
    from . import pipeline

    pipeline.mark_running(audit_id)
    chunk_ids = pipeline.pending_chunks(audit_id)
    if not chunk_ids:
        continue_audit_task.delay(audit_id)
    for chunk_id in chunk_ids:
        audit_chunk_task.delay(audit_id, chunk_id)
    return {"audit": audit_id, "chunks": len(chunk_ids)}


@shared_task(bind=True, acks_late=True, name="auditor.audit_chunk", max_retries=3)
def audit_chunk_task(self, audit_id: int, chunk_id: int) -> dict:
    from . import pipeline

    try:
        last = pipeline.run_chunk(chunk_id, worker=self.request.hostname or "eager")
    except Exception as exc:
        pipeline.mark_failed(audit_id, exc)
        raise
    if last:
        continue_audit_task.delay(audit_id)
    return {"audit": audit_id, "chunk": chunk_id, "last": last}


@shared_task(bind=True, acks_late=True, name="auditor.continue_audit")
def continue_audit_task(self, audit_id: int) -> dict:
    from . import pipeline

    try:
        audit = pipeline.run_set_level_stages(audit_id, worker=self.request.hostname or "eager")
    except Exception as exc:
        pipeline.mark_failed(audit_id, exc)
        raise
    return {"audit": audit_id, "status": audit.status, "ran_stages": audit.ran_stages}


def recover_audits(restart=None, assume_all_dead: bool = False):
    """Re-enqueue audit work that dead workers left behind (auditor/recovery.py); returns what was sent."""
    from .recovery import recover_stalled_audits

    return recover_stalled_audits(lambda audit_id, chunk_id: audit_chunk_task.delay(audit_id, chunk_id),
                                  lambda audit_id: continue_audit_task.delay(audit_id),
                                  restart=restart, assume_all_dead=assume_all_dead)


@shared_task(bind=True, name="auditor.recover_audits")
def recover_audits_task(self) -> dict:
    """The same check the workers run on their own (for a beat schedule or an operator's one-off call)."""
    recovery = recover_audits()
    return {"chunks": recovery.chunks, "continued": recovery.continued, "failed": recovery.failed}
