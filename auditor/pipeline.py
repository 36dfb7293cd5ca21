"""The audit as resumable stages: features → fidelity → phototype → memorization → detector → explanations → report.

Per-image work (features, phototype estimates) is cut into chunks that any worker may take; each chunk is
idempotent (content-addressed feature cache, estimates stored on the image) and records the worker that did it.
When the last chunk is done, exactly one worker wins the transition (a conditional UPDATE) and runs the
set-level stages in order, skipping those that already have a result, so a redelivered task resumes where
the previous one died.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from metrics.results import to_jsonable

from .models import Audit, AuditChunk, AuditResult, Image
from .models.audits import STAGES

logger = logging.getLogger(__name__)
CHUNK_SIZE = 64


class AuditConfigurationError(Exception):
    pass


def audit_images(audit: Audit) -> list[int]:
    """Every image any stage will embed: generated, reference, training and baseline sets (and their copies)."""
    sets = [audit.generated_set_id, audit.reference_set_id, audit.training_set_id, audit.baseline_set_id]
    return list(Image.objects.filter(image_set_id__in=[s for s in sets if s]).order_by("sha256", "id").values_list("id", flat=True))


def validate_audit(audit: Audit) -> None:
    organisation = audit.organisation_id
    for label, image_set in [("generated", audit.generated_set), ("reference", audit.reference_set),
                             ("training", audit.training_set), ("baseline", audit.baseline_set)]:
        if image_set is None:
            continue
        if image_set.organisation_id != organisation:
            raise AuditConfigurationError(f"the {label} set belongs to another organisation")
        if not image_set.images.exists():
            raise AuditConfigurationError(f"the {label} set {image_set.name!r} has no images")
    if audit.generated_set_id == audit.reference_set_id:
        raise AuditConfigurationError("the generated and reference sets must differ")


def start_audit(audit: Audit, enqueue: Callable[[int], None]) -> Audit:
    """Freeze the criteria, cut the per-image work into chunks and queue the audit."""
    validate_audit(audit)
    with transaction.atomic():
        locked = Audit.objects.select_for_update().get(pk=audit.pk)
        if locked.status != Audit.Status.DRAFT:
            raise AuditConfigurationError(f"audit is {locked.status}; only a draft can be started")
        locked.criteria = locked.effective_criteria()  # defaults written out: what was decided, not what defaulted
        locked.locked_at = timezone.now()
        locked.status = Audit.Status.QUEUED
        locked.stage = STAGES[0]
        image_ids = audit_images(locked)
        chunks = [image_ids[i : i + CHUNK_SIZE] for i in range(0, len(image_ids), CHUNK_SIZE)]
        AuditChunk.objects.bulk_create([AuditChunk(audit=locked, index=i, image_ids=ids) for i, ids in enumerate(chunks)])
        locked.total, locked.done = len(image_ids), 0
        locked.save()
    transaction.on_commit(lambda: enqueue(locked.pk))
    return locked


def mark_running(audit_id: int) -> None:
    Audit.objects.filter(pk=audit_id, status=Audit.Status.QUEUED).update(
        status=Audit.Status.RUNNING, started_at=timezone.now(), stage_started_at=timezone.now())


def pending_chunks(audit_id: int) -> list[int]:
    return list(AuditChunk.objects.filter(audit_id=audit_id, done=False).values_list("id", flat=True))


def run_chunk(chunk_id: int, worker: str) -> bool:
    """Do one chunk's per-image work; returns True when this call completed the last chunk of its audit's stage."""
    from .audit_stages import process_images

    chunk = AuditChunk.objects.select_related("audit").get(pk=chunk_id)
    if chunk.done:
        return False
    started = time.perf_counter()
    process_images(chunk.audit, chunk.image_ids)
    updated = AuditChunk.objects.filter(pk=chunk.pk, done=False).update(
        done=True, worker=worker[:200], seconds=time.perf_counter() - started, finished_at=timezone.now())
    if updated:
        Audit.objects.filter(pk=chunk.audit_id).update(done=F("done") + len(chunk.image_ids))
    if AuditChunk.objects.filter(audit_id=chunk.audit_id, done=False).exists():
        return False
    # Exactly one caller moves the audit past the feature stage.
    return bool(Audit.objects.filter(pk=chunk.audit_id, stage=STAGES[0]).update(
        stage=STAGES[1], stage_started_at=timezone.now(), done=0, total=len(STAGES) - 1))


def run_set_level_stages(audit_id: int) -> Audit:
    """Run every set-level stage that has no stored result yet, in order."""
    from .audit_stage_impl import STAGE_FUNCTIONS

    audit = Audit.objects.get(pk=audit_id)
    if audit.status == Audit.Status.SUCCEEDED:
        return audit
    done_stages = set(audit.results.values_list("stage", flat=True))
    for index, stage in enumerate(STAGES[1:], start=1):
        Audit.objects.filter(pk=audit_id).update(stage=stage, done=index - 1, stage_started_at=timezone.now())
        if stage in done_stages:
            continue
        audit.refresh_from_db()
        data = to_jsonable(STAGE_FUNCTIONS[stage](audit))  # plain JSON: numpy scalars out, NaN/inf to null
        AuditResult.objects.update_or_create(audit=audit, stage=stage, defaults={"data": data})
    Audit.objects.filter(pk=audit_id).update(status=Audit.Status.SUCCEEDED, done=len(STAGES) - 1, finished_at=timezone.now(), error="")
    return Audit.objects.get(pk=audit_id)


def mark_failed(audit_id: int, exc: BaseException) -> None:
    logger.exception("audit %s failed", audit_id)
    Audit.objects.filter(pk=audit_id).update(
        status=Audit.Status.FAILED, error=f"{type(exc).__name__}: {exc}"[:4000], finished_at=timezone.now())


def progress(audit: Audit) -> dict:
    """Stage, done/total and a naive ETA from the current stage's rate."""
    eta = None
    if audit.status == Audit.Status.RUNNING and audit.stage_started_at and audit.done and audit.total:
        elapsed = (timezone.now() - audit.stage_started_at).total_seconds()
        eta = round(elapsed / audit.done * (audit.total - audit.done), 1)
    return {"status": audit.status, "stage": audit.stage, "done": audit.done, "total": audit.total, "eta_seconds": eta,
            "stages": STAGES, "error": audit.error}


def clone_for_rerun(audit: Audit, user=None) -> Audit:
    """A new draft with the same inputs, seed and criteria: re-running must reproduce the numbers exactly."""
    fields = ["organisation", "generated_set", "reference_set", "training_set", "baseline_set", "include_copy_baseline",
              "detector", "reader_study", "target_phototype", "criteria", "extractor_id", "seed"]
    values = {name: getattr(audit, name) for name in fields}
    return Audit.objects.create(name=f"{audit.name} (re-run)", created_by=user or audit.created_by, **values)
