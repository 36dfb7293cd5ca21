"""The audit as resumable stages: features → fidelity → phototype → memorization → detector → explanations → report.

Per-image work (features, phototype estimates) is cut into chunks that any worker may take; each chunk is
idempotent (content-addressed feature cache, estimates stored on the image) and records the worker that did it.
When the last chunk is done, exactly one worker wins the transition (a conditional UPDATE) and runs the
set-level stages in order, skipping those that already have a result, so a redelivered task resumes where
the previous one died.

Leases make that safe with several workers and killed ones: a worker claims a chunk, or the set-level stages,
with a conditional UPDATE and renews the claim from a background thread while it works. A second delivery of
the same work finds a live claim and does nothing; a dead worker's claim runs out and auditor/audits/recovery.py hands
the work to another worker. A set-level result is stored only by the runner that still holds the lease, in the
same transaction that checks it, so two continue tasks racing cannot both write.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from auditor.audits.images import feature_precision
from auditor.models import Audit, AuditChunk, AuditResult, Image
from auditor.models.audits import STAGES
from metrics.features import bf16_unavailable_reason
from metrics.results import to_jsonable
from metrics.torch_threads import intra_op_threads

logger = logging.getLogger(__name__)
CHUNK_SIZE = 64
# Torch threads of every set-level stage, whatever the deployment: a convolution or matrix product can sum in another
# order at another thread count (MS-SSIM, Grad-CAM and the detectors' forward passes would differ in their last bits),
# and an audit must give the same numbers on any machine. One thread also leaves the other cores to the stages' own
# background threads (the probe beside the ViT, the detector's batch preparation). Per-image features are
# thread-invariant (metrics/extractors.py) and keep DERMAUDIT_CHUNK_THREADS.
SET_LEVEL_TORCH_THREADS = 1


ACTIVE = (Audit.Status.QUEUED, Audit.Status.RUNNING)


class AuditConfigurationError(Exception):
    pass


class LeaseLost(Exception):
    """Another worker took the work over (this one stalled past its lease); what this one computed is dropped."""


def lease_duration() -> timedelta:
    return timedelta(seconds=float(settings.DERMAUDIT_TASK_LEASE_SECONDS))


class LeaseKeeper:
    """Renews a lease from a background thread every third of its length while the block runs.

    `renew()` returns False once the lease belongs to someone else; `lost` tells the block. Inside an open
    transaction (eager tasks in a test's transaction) no thread is started: another connection could not see
    the uncommitted rows, and nothing else runs concurrently there anyway.
    """

    def __init__(self, renew: Callable[[], bool]):
        self.renew = renew
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LeaseKeeper:
        if not connection.in_atomic_block:
            self._thread = threading.Thread(target=self._run, name="audit-lease", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        interval = lease_duration().total_seconds() / 3
        try:
            while not self._stop.wait(interval):
                try:
                    if not self.renew():
                        self.lost = True
                        return
                except Exception:  # a database hiccup: keep trying; the lease covers two missed renewals
                    logger.warning("could not renew an audit lease", exc_info=True)
        finally:
            connection.close()  # this thread's own connection


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
        if image_set.ingest_jobs.filter(status__in=["pending", "running"]).exists():
            raise AuditConfigurationError(
                f"the {label} set {image_set.name!r} has an import that has not finished; start the audit once it "
                "has (an import whose worker died can be re-run: it adds only what is missing)")
        if not type(image_set).objects.filter(pk=image_set.pk).exclude(manifest_sha256="").exists():
            image_set.refresh_manifest()  # e.g. an import that died before recording it: the report needs it
    if audit.generated_set_id == audit.reference_set_id:
        raise AuditConfigurationError("the generated and reference sets must differ")
    if feature_precision(audit) == "bf16" and (reason := bf16_unavailable_reason(audit.extractor_id)):
        chosen = ("the audit's choice" if audit.feature_precision
                  else f"the deployment's DERMAUDIT_FEATURE_PRECISION={settings.DERMAUDIT_FEATURE_PRECISION}")
        raise AuditConfigurationError(
            f"feature precision bf16 ({chosen}) is not available here: {reason}. Choose fp32 (a re-run of a bf16 "
            "audit in fp32 gives an FD within 0.5 %, not the same digits).")


def start_audit(audit: Audit, enqueue: Callable[[int], None]) -> Audit:
    """Freeze the criteria, cut the per-image work into chunks and queue the audit."""
    validate_audit(audit)
    with transaction.atomic():
        locked = Audit.objects.select_for_update().get(pk=audit.pk)
        if locked.status != Audit.Status.DRAFT:
            raise AuditConfigurationError(f"audit is {locked.status}; only a draft can be started")
        locked.criteria = locked.effective_criteria()  # defaults written out: what was decided, not what defaulted
        locked.feature_precision = feature_precision(locked)  # the deployment's default, resolved here, written out
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


def claim_chunk(chunk_id: int, worker: str) -> bool:
    """Take a chunk unless a live worker holds it (a second delivery of the same chunk then does nothing)."""
    now = timezone.now()
    free = Q(claimed_by="") | Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)
    return bool(AuditChunk.objects.filter(free, pk=chunk_id, done=False).update(
        claimed_by=worker[:200], claimed_at=now, lease_expires_at=now + lease_duration(), attempts=F("attempts") + 1))


def renew_chunk(chunk_id: int, worker: str) -> bool:
    return bool(AuditChunk.objects.filter(pk=chunk_id, done=False, claimed_by=worker[:200]).update(
        lease_expires_at=timezone.now() + lease_duration()))


def run_chunk(chunk_id: int, worker: str) -> bool:
    """Do one chunk's per-image work; returns True when this call moved its audit past the feature stage."""
    from auditor.audits.images import process_images

    chunk = AuditChunk.objects.select_related("audit").get(pk=chunk_id)
    if chunk.audit.status not in ACTIVE:
        return False  # failed (or finished): stop spending time on it
    if not chunk.done:
        mark_running(chunk.audit_id)
        if not claim_chunk(chunk.pk, worker):
            logger.info("audit %s chunk %s: held by %s, skipped", chunk.audit_id, chunk.index, chunk.claimed_by)
            return False
        started = time.perf_counter()
        with LeaseKeeper(lambda: renew_chunk(chunk.pk, worker)):
            process_images(chunk.audit, chunk.image_ids)
        updated = AuditChunk.objects.filter(pk=chunk.pk, done=False).update(
            done=True, worker=worker[:200], seconds=time.perf_counter() - started, finished_at=timezone.now(),
            claimed_by="", lease_expires_at=None)
        if updated:
            Audit.objects.filter(pk=chunk.audit_id).update(done=F("done") + len(chunk.image_ids))
    # A chunk delivered again after its work was done still tries the transition: its first worker may have died
    # between marking the chunk and moving the audit on.
    return advance_past_features(chunk.audit_id)


def advance_past_features(audit_id: int) -> bool:
    """When no chunk is pending, move the audit to the set-level stages; exactly one caller gets True."""
    if AuditChunk.objects.filter(audit_id=audit_id, done=False).exists():
        return False
    now = timezone.now()
    # The runner lease doubles as a reservation: a continue task is on its way, recovery leaves it alone meanwhile.
    return bool(Audit.objects.filter(pk=audit_id, stage=STAGES[0], status__in=ACTIVE).update(
        status=Audit.Status.RUNNING, stage=STAGES[1], stage_started_at=now, done=0, total=len(STAGES) - 1,
        runner="", runner_lease_expires_at=now + lease_duration()))


def claim_runner(audit_id: int, runner: str) -> bool:
    now = timezone.now()
    free = Q(runner="") | Q(runner_lease_expires_at__isnull=True) | Q(runner_lease_expires_at__lt=now)
    return bool(Audit.objects.filter(free, pk=audit_id, status=Audit.Status.RUNNING).exclude(stage=STAGES[0]).update(
        runner=runner, runner_lease_expires_at=now + lease_duration()))


def renew_runner(audit_id: int, runner: str) -> bool:
    return bool(Audit.objects.filter(pk=audit_id, runner=runner, status=Audit.Status.RUNNING).update(
        runner_lease_expires_at=timezone.now() + lease_duration()))


def run_set_level_stages(audit_id: int, worker: str = "local") -> Audit:
    """Run every set-level stage that has no stored result yet, in order, unless another live runner is at it.

    Returns the audit as this call left it; `audit.ran_stages` says whether this call ran them."""
    from auditor.audits.stages import STAGE_FUNCTIONS

    audit = Audit.objects.get(pk=audit_id)
    audit.ran_stages = False
    if audit.status not in ACTIVE:
        return audit
    if audit.stage == STAGES[0] and not advance_past_features(audit_id):
        return audit  # chunks still pending (or another caller just moved it on and will continue)
    runner = f"{worker[:200]} {uuid.uuid4().hex[:12]}"
    if not claim_runner(audit_id, runner):
        holder = Audit.objects.filter(pk=audit_id).values_list("runner", flat=True).first()
        logger.info("audit %s: set-level stages held by %r; this delivery does nothing", audit_id, holder)
        return audit
    try:
        with LeaseKeeper(lambda: renew_runner(audit_id, runner)) as keeper:
            done_stages = set(AuditResult.objects.filter(audit_id=audit_id).values_list("stage", flat=True))
            for index, stage in enumerate(STAGES[1:], start=1):
                if keeper.lost or not Audit.objects.filter(pk=audit_id, runner=runner).update(
                        stage=stage, done=index - 1, stage_started_at=timezone.now()):
                    raise LeaseLost(stage)
                if stage in done_stages:
                    continue
                audit.refresh_from_db()
                with intra_op_threads(SET_LEVEL_TORCH_THREADS):
                    data = to_jsonable(STAGE_FUNCTIONS[stage](audit))  # plain JSON: numpy scalars out, NaN/inf to null
                with transaction.atomic():
                    # Renewing first takes the row's write lock: a takeover cannot slip between check and write.
                    if not renew_runner(audit_id, runner):
                        raise LeaseLost(stage)
                    AuditResult.objects.update_or_create(audit_id=audit_id, stage=stage, defaults={"data": data})
            if not Audit.objects.filter(pk=audit_id, runner=runner).update(
                    status=Audit.Status.SUCCEEDED, done=len(STAGES) - 1, finished_at=timezone.now(), error="", runner="",
                    runner_lease_expires_at=None):
                raise LeaseLost("finish")
    except LeaseLost as lost:
        logger.warning("audit %s: lost the set-level lease at %s; another worker carries on", audit_id, lost)
        audit = Audit.objects.get(pk=audit_id)
        audit.ran_stages = False
        return audit
    audit = Audit.objects.get(pk=audit_id)
    audit.ran_stages = True
    return audit


def mark_failed(audit_id: int, exc: BaseException) -> None:
    logger.exception("audit %s failed", audit_id)
    Audit.objects.filter(pk=audit_id).update(
        status=Audit.Status.FAILED, error=f"{type(exc).__name__}: {exc}"[:4000], finished_at=timezone.now(), runner="",
        runner_lease_expires_at=None)


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
              "detector", "reader_study", "target_phototype", "criteria", "extractor_id", "feature_precision",
              "seed"]
    values = {name: getattr(audit, name) for name in fields}
    return Audit.objects.create(name=f"{audit.name} (re-run)", created_by=user or audit.created_by, **values)
