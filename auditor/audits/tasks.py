"""Celery tasks of the audits domain: thin wrappers that call auditor.audits.pipeline (and recovery)."""
from __future__ import annotations

from celery import shared_task


@shared_task(bind=True, acks_late=True, name="auditor.run_audit")
def run_audit_task(self, audit_id: int) -> dict:
    """Fan the per-image chunks out to the workers (or continue straight to the set-level stages)."""
    from auditor.audits import pipeline

    pipeline.mark_running(audit_id)
    chunk_ids = pipeline.pending_chunks(audit_id)
    if not chunk_ids:
        continue_audit_task.delay(audit_id)
    for chunk_id in chunk_ids:
        audit_chunk_task.delay(audit_id, chunk_id)
    return {"audit": audit_id, "chunks": len(chunk_ids)}


@shared_task(bind=True, acks_late=True, name="auditor.audit_chunk", max_retries=3)
def audit_chunk_task(self, audit_id: int, chunk_id: int) -> dict:
    from auditor.audits import pipeline

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
    from auditor.audits import pipeline

    try:
        audit = pipeline.run_set_level_stages(audit_id, worker=self.request.hostname or "eager")
    except Exception as exc:
        pipeline.mark_failed(audit_id, exc)
        raise
    return {"audit": audit_id, "status": audit.status, "ran_stages": audit.ran_stages}


def recover_audits(restart=None, assume_all_dead: bool = False):
    """Re-enqueue audit work that dead workers left behind (auditor/audits/recovery.py); returns what was sent."""
    from auditor.audits.recovery import recover_stalled_audits

    return recover_stalled_audits(lambda audit_id, chunk_id: audit_chunk_task.delay(audit_id, chunk_id),
                                  lambda audit_id: continue_audit_task.delay(audit_id),
                                  restart=restart, assume_all_dead=assume_all_dead)


@shared_task(bind=True, name="auditor.recover_audits")
def recover_audits_task(self) -> dict:
    """The same check the workers run on their own (for a beat schedule or an operator's one-off call)."""
    recovery = recover_audits()
    return {"chunks": recovery.chunks, "continued": recovery.continued, "failed": recovery.failed}
