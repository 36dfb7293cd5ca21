"""manage.py resume_audits: audit work whose worker died is handed out again (eager here: it runs in this process)."""
from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from auditor.audits import pipeline
from auditor.models import Audit, AuditChunk, ImageSet, Report
from auditor.models.audits import STAGES

from tests.auditor.ingest_helpers import ingest_paths
from tests.auditor.audits.test_pipeline import _subset

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

DEAD = "w9@gone-host"


@pytest.fixture
def stalled_audit(org, isic_dir, pad_dir, tmp_path, settings, monkeypatch) -> Audit:
    """A started audit of 40 images in 3 chunks whose run message never reached a worker."""
    settings.DERMAUDIT_FEATURE_CACHE = tmp_path / "features"
    settings.DERMAUDIT_TASK_LEASE_SECONDS = 60
    monkeypatch.setattr(pipeline, "CHUNK_SIZE", 16)
    reference = ImageSet.objects.create(organisation=org, name="isic", kind="reference")
    ingest_paths(reference, [_subset(isic_dir, tmp_path, "ref", 24, step=13)])
    generated = ImageSet.objects.create(organisation=org, name="pad", kind="generated")
    ingest_paths(generated, [_subset(pad_dir, tmp_path, "gen", 16, step=17)])
    audit = Audit.objects.create(organisation=org, name="stalled", generated_set=generated, reference_set=reference)
    return pipeline.start_audit(audit, enqueue=lambda audit_id: None)


def _resume(*args) -> str:
    out = io.StringIO()
    call_command("resume_audits", *args, stdout=out)
    return out.getvalue()


def test_work_of_a_dead_worker_is_resumed_once_its_lease_runs_out(stalled_audit):
    chunks = AuditChunk.objects.filter(audit=stalled_audit)
    first = chunks.first()
    now = timezone.now()
    chunks.filter(pk=first.pk).update(claimed_by=DEAD, claimed_at=now, lease_expires_at=now + timedelta(seconds=60),
                                      attempts=1)

    assert "nothing to resume" in _resume()  # the claim is live and the audit moved recently: workers are on it
    assert chunks.filter(claimed_by=DEAD).count() == 1 and not chunks.filter(done=True).exists()

    # Time passes without a renewal: the worker is dead, and no other chunk was taken for a whole lease either.
    long_ago = now - timedelta(seconds=120)
    chunks.filter(pk=first.pk).update(claimed_at=long_ago, lease_expires_at=long_ago + timedelta(seconds=60))
    Audit.objects.filter(pk=stalled_audit.pk).update(locked_at=long_ago, stage_started_at=None)
    output = _resume()

    assert "re-enqueued 3 chunks" in output, output
    stalled_audit.refresh_from_db()
    assert stalled_audit.status == "succeeded", stalled_audit.error
    assert list(chunks.values_list("attempts", flat=True)) == [2, 1, 1]  # the dead worker's chunk, taken again
    assert not chunks.filter(done=False).exists() and not chunks.exclude(claimed_by="").exists()
    assert stalled_audit.results.count() == len(STAGES) - 1 and Report.objects.filter(audit=stalled_audit).count() == 1
    assert "nothing to resume" in _resume()  # finished audits are left alone


def test_set_level_stages_of_a_dead_runner_are_resumed(stalled_audit):
    moved_on = [pipeline.run_chunk(chunk_id, worker="w1@host") for chunk_id in pipeline.pending_chunks(stalled_audit.pk)]
    assert moved_on == [False, False, True]
    # The winner of the transition died before it sent the continue task, or while it ran the stages.
    expired = timezone.now() - timedelta(seconds=1)
    Audit.objects.filter(pk=stalled_audit.pk).update(runner=f"{DEAD} 0123456789ab", runner_lease_expires_at=expired)

    output = _resume()

    assert "the set-level stages of 1 audits" in output, output
    stalled_audit.refresh_from_db()
    assert (stalled_audit.status, stalled_audit.runner, stalled_audit.runner_lease_expires_at) == ("succeeded", "", None)
    assert stalled_audit.results.count() == len(STAGES) - 1 and Report.objects.filter(audit=stalled_audit).count() == 1


def test_a_chunk_that_never_finishes_fails_its_audit(stalled_audit, settings):
    chunk = AuditChunk.objects.filter(audit=stalled_audit).last()
    now = timezone.now()
    AuditChunk.objects.filter(pk=chunk.pk).update(claimed_by=DEAD, claimed_at=now, lease_expires_at=now + timedelta(seconds=60),
                                                  attempts=settings.DERMAUDIT_MAX_CHUNK_ATTEMPTS)

    output = _resume("--all-workers-stopped")  # the operator knows no worker runs: live leases do not count

    stalled_audit.refresh_from_db()
    assert stalled_audit.status == "failed"
    assert f"chunk {chunk.index} ({len(chunk.image_ids)} images) was started 5 times and never finished" in stalled_audit.error
    assert DEAD in stalled_audit.error and f"audit {stalled_audit.pk} failed" in output
    assert not AuditChunk.objects.filter(audit=stalled_audit, done=True).exists()  # nothing else was started
