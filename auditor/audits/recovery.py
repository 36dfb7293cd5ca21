"""Finding audit work that a dead worker left behind, and handing it out again, whatever the broker.

Brokers differ in what they do with the message of a SIGKILLed worker: Redis gives it to another worker only
after its visibility timeout (an hour by default), kombu's filesystem transport deleted it when it was received,
and a lost message is lost on any of them. So recovery goes by the database instead (leases, see auditor/audits/pipeline.py):

- a chunk claimed by a worker whose lease ran out (it stopped renewing it: dead) is re-enqueued;
- a chunk claimed by the worker that is starting up now under the same name is re-enqueued at once: the
  previous process of that worker is gone, whatever its lease still says;
- unclaimed pending chunks are re-enqueued only when the audit has made no progress for a whole lease and no
  worker holds any of its chunks (their messages were lost, e.g. with the run task itself); otherwise they are
  presumed queued. Re-enqueued work is marked reserved for one lease, so repeated passes do not pile copies up;
- an audit past its chunks whose set-level runner's lease ran out (or that never got one) gets a new continue
  task; one whose chunks are all done but that never moved on is moved on;
- a chunk claimed DERMAUDIT_MAX_CHUNK_ATTEMPTS times without finishing fails its audit with a clear error
  (a chunk that kills every worker that takes it, e.g. out of memory, must not loop for ever).

Every hand-out is a conditional UPDATE on the values read, so two workers recovering at once send each piece
of work once; and a copy that arrives anyway finds the work done or claimed and does nothing.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from auditor.audits import pipeline
from auditor.models import Audit, AuditChunk
from auditor.models.audits import STAGES

logger = logging.getLogger(__name__)


@dataclass
class Recovery:
    chunks: list[int] = field(default_factory=list)  # chunk ids re-enqueued
    continued: list[int] = field(default_factory=list)  # audit ids whose set-level stages were re-enqueued
    failed: list[int] = field(default_factory=list)  # audit ids failed for a chunk that never finishes

    def __bool__(self) -> bool:
        return bool(self.chunks or self.continued or self.failed)


@dataclass(frozen=True)
class Restart:
    """A worker starting under `name` at `at`: claims made under that name before `at` are its dead predecessor's."""

    name: str
    at: datetime


def recover_stalled_audits(enqueue_chunk: Callable[[int, int], None], enqueue_continue: Callable[[int], None], *,
                           restart: Restart | None = None, assume_all_dead: bool = False) -> Recovery:
    """Re-enqueue the work of running audits that nobody is doing; see the module docstring for the rules.

    `assume_all_dead`: no worker is running (an operator says so): every claim is an orphan.
    """
    recovery = Recovery()
    for audit in Audit.objects.filter(status__in=pipeline.ACTIVE, locked_at__isnull=False).order_by("pk"):
        if audit.stage == STAGES[0]:
            _recover_chunks(audit, enqueue_chunk, enqueue_continue, recovery, restart, assume_all_dead)
        else:
            _recover_runner(audit, enqueue_continue, recovery, restart, assume_all_dead)
    if recovery:
        logger.warning("audit recovery%s: re-enqueued chunks %s, set-level stages of audits %s; failed audits %s",
                       f" at start-up of {restart.name}" if restart else "", recovery.chunks,
                       recovery.continued, recovery.failed)
    return recovery


def _recover_chunks(audit: Audit, enqueue_chunk, enqueue_continue, recovery: Recovery, restart: Restart | None,
                    assume_all_dead: bool) -> None:
    now = timezone.now()
    lease = pipeline.lease_duration()
    pending = list(AuditChunk.objects.filter(audit=audit, done=False).order_by("index"))
    if not pending:
        if pipeline.advance_past_features(audit.pk):  # its last worker died between the chunk and the transition
            enqueue_continue(audit.pk)
            recovery.continued.append(audit.pk)
        return

    def orphaned(chunk: AuditChunk) -> bool:
        if not chunk.claimed_by:
            return False
        if restart and chunk.claimed_by == restart.name and (chunk.claimed_at is None or chunk.claimed_at < restart.at):
            return True
        return assume_all_dead or chunk.lease_expires_at is None or chunk.lease_expires_at < now

    live_claims = [c for c in pending if c.claimed_by and not orphaned(c)]
    to_send = [c for c in pending if orphaned(c)]
    last_progress = max(t for t in [
        audit.locked_at, audit.stage_started_at,
        AuditChunk.objects.filter(audit=audit).aggregate(t=Max("finished_at"))["t"],
        max((c.claimed_at for c in pending if c.claimed_at), default=None),
    ] if t is not None)
    if not live_claims and (assume_all_dead or last_progress < now - lease):
        to_send += [c for c in pending if not c.claimed_by and (c.lease_expires_at is None or c.lease_expires_at < now)]
    for chunk in to_send:
        if chunk.claimed_by and chunk.attempts >= settings.DERMAUDIT_MAX_CHUNK_ATTEMPTS:
            pipeline.mark_failed(audit.pk, RuntimeError(
                f"chunk {chunk.index} ({len(chunk.image_ids)} images) was started {chunk.attempts} times and never "
                f"finished; the last worker to take it was {chunk.claimed_by} (killed, out of memory?)"))
            recovery.failed.append(audit.pk)
            return
        # Reserve it (unclaimed, lease = one more period) only if nobody touched it since we read it.
        reserved = AuditChunk.objects.filter(pk=chunk.pk, done=False, claimed_by=chunk.claimed_by,
                                             lease_expires_at=chunk.lease_expires_at).update(
            claimed_by="", lease_expires_at=now + lease)
        if reserved:
            enqueue_chunk(audit.pk, chunk.pk)
            recovery.chunks.append(chunk.pk)


def _recover_runner(audit: Audit, enqueue_continue, recovery: Recovery, restart: Restart | None,
                    assume_all_dead: bool) -> None:
    now = timezone.now()
    lease = pipeline.lease_duration()
    expires: datetime | None = audit.runner_lease_expires_at
    # A runner renews its lease every third of it: one last renewed before the restart is the dead predecessor's.
    predecessor = bool(restart and audit.runner.startswith(f"{restart.name} ") and expires and expires - lease < restart.at)
    orphaned = assume_all_dead or predecessor or expires is None or expires < now
    if not orphaned:
        return
    reserved = Audit.objects.filter(pk=audit.pk, status=Audit.Status.RUNNING, runner=audit.runner,
                                    runner_lease_expires_at=expires).update(
        runner="", runner_lease_expires_at=now + lease)
    if reserved:
        enqueue_continue(audit.pk)
        recovery.continued.append(audit.pk)
