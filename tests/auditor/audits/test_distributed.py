"""One audit across real `celery worker` processes: shared work, a SIGKILLed worker, racing continue tasks.

Every distributed run is compared with the same audit run in-process (eager Celery) on the same image content:
the stored numbers must be identical. The two-worker audit and the eager one use one pre-trained detector: an
audit's own detector trains for a time budget, so the steps it gets, and so its weights, depend on how busy the
machine is (two trainings with the same seed in one process gave different checkpoints). The kill and race tests
leave the detector out (its two stages cost most of an audit's time and do not read the per-image work a kill
interrupts) and compare the stages built on that work: fidelity, phototype and memorisation.
Torch runs one thread here and in the workers: the same arithmetic in both, and far faster on a busy machine.
"""
from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from auditor.audits import pipeline
from auditor.detection.runs import train_detector_run
from auditor.models import Audit, AuditChunk, AuditResult, DetectorRun, Image, ImageSet, Organisation, Report
from auditor.models.audits import STAGES
from auditor.audits.tasks import run_audit_task
from metrics.torch_threads import intra_op_threads

from tests.support.workers import wait_for, worker_pool
from tests.auditor.ingest_helpers import ingest_paths
from tests.auditor.audits.test_pipeline import UTILITY_BY_MALIGNANCY, _subset

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.worker]

N_REFERENCE, N_GENERATED, CHUNK_SIZE = 48, 32, 16  # 80 images: 5 chunks
ALL_STAGES = ("fidelity", "phototype", "utility", "memorization", "detectability", "detector", "explanations")
PER_IMAGE_STAGES = ("fidelity", "phototype", "utility", "memorization")  # built on the chunks' features and estimates
# Set in this process (eager runs) and in every worker: what an audit computes must not differ between them.
AUDIT_ENV = {"DERMAUDIT_ROAD_IMAGES": "4", "DERMAUDIT_TASK_LEASE_SECONDS": "12", "DERMAUDIT_CROSSFIT_EPOCHS": "1",
             "DERMAUDIT_PROBE_PERMUTATIONS": "10"}
WORKER_ENV = {**AUDIT_ENV, "DERMAUDIT_RECOVERY_INTERVAL_SECONDS": "3", "DERMAUDIT_LOG_LEVEL": "INFO", "OMP_NUM_THREADS": "1"}

_shared: dict[str, object] = {}  # across this module's tests: the trained detector and the eager numbers


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture
def audit_settings(settings, model_dir, monkeypatch):
    settings.DERMAUDIT_MODEL_DIR = model_dir
    settings.DERMAUDIT_ROAD_IMAGES = int(AUDIT_ENV["DERMAUDIT_ROAD_IMAGES"])
    settings.DERMAUDIT_TASK_LEASE_SECONDS = float(AUDIT_ENV["DERMAUDIT_TASK_LEASE_SECONDS"])
    settings.DERMAUDIT_CROSSFIT_EPOCHS = int(AUDIT_ENV["DERMAUDIT_CROSSFIT_EPOCHS"])
    settings.DERMAUDIT_PROBE_PERMUTATIONS = int(AUDIT_ENV["DERMAUDIT_PROBE_PERMUTATIONS"])
    monkeypatch.setattr(pipeline, "CHUNK_SIZE", CHUNK_SIZE)  # start_audit cuts the chunks in this process
    with intra_op_threads(1):
        yield settings


def _image_sets(name: str, isic_dir: Path, pad_dir: Path, tmp_path: Path) -> tuple[Organisation, ImageSet, ImageSet]:
    """The same image content in every organisation (and set names: results quote them); fresh rows each time."""
    org = Organisation.objects.create(name=name)
    reference = ImageSet.objects.create(organisation=org, name="isic-reference", kind="reference")
    ingest_paths(reference, [_subset(isic_dir, tmp_path, f"{name}-ref", N_REFERENCE, step=9)])
    generated = ImageSet.objects.create(organisation=org, name="pad-as-generated", kind="generated",
                                        generator_name="(clinical photos posing as a generator)", intended_use="test")
    ingest_paths(generated, [_subset(pad_dir, tmp_path, f"{name}-gen", N_GENERATED, step=11)])
    assert (reference.images.count(), generated.images.count()) == (N_REFERENCE, N_GENERATED)
    return org, reference, generated


def _detector(org: Organisation, reference: ImageSet, generated: ImageSet) -> DetectorRun:
    """The module's one pre-trained detector, as a row of `org` (trained on the first call)."""
    if "detector" not in _shared:
        run = DetectorRun.objects.create(organisation=org, reference_set=reference, seed=5, max_seconds=8)
        run.synthetic_sets.set([generated])
        run = train_detector_run(run)
        assert run.status == "succeeded", run.message
        _shared["detector"] = {name: getattr(run, name) for name in
                               ("status", "checkpoint", "checkpoint_sha256", "evaluation", "config", "seed", "max_seconds")}
        return run
    run = DetectorRun.objects.create(organisation=org, reference_set=reference, **_shared["detector"])
    run.synthetic_sets.set([generated])
    return run


def _new_audit(name: str, isic_dir, pad_dir, tmp_path, with_detector: bool = True) -> Audit:
    org, reference, generated = _image_sets(name, isic_dir, pad_dir, tmp_path)
    return Audit.objects.create(organisation=org, name="distributed", generated_set=generated, reference_set=reference,
                                detector=_detector(org, reference, generated) if with_detector else None,
                                include_copy_baseline=True, criteria=UTILITY_BY_MALIGNANCY)


def _comparable(value):
    """Stored results minus what legitimately differs between two audits: timings, file paths, row ids."""
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()
                if k not in {"timings_s", "seconds_per_image", "seconds", "wall_s", "path", "detector_run", "sha256"}}
    return [_comparable(v) for v in value] if isinstance(value, list) else value


def _results(audit: Audit, stages=ALL_STAGES) -> dict[str, str]:
    data = {r.stage: r.data for r in AuditResult.objects.filter(audit=audit, stage__in=stages)}
    return {stage: json.dumps(_comparable(data[stage]), sort_keys=True) for stage in stages}


def _eager_numbers(isic_dir, pad_dir, tmp_path, settings) -> dict[str, str]:
    """The audit run in this process, once per module and deployment precision setting (the database is emptied
    between tests; numbers are kept)."""
    key = f"eager {settings.DERMAUDIT_FEATURE_PRECISION}"
    if key not in _shared:
        features = settings.DERMAUDIT_FEATURE_CACHE
        settings.DERMAUDIT_FEATURE_CACHE = tmp_path / "eager-features"
        audit = _new_audit("Eager clinic", isic_dir, pad_dir, tmp_path)
        pipeline.start_audit(audit, enqueue=lambda audit_id: run_audit_task.delay(audit_id))  # eager: runs now
        audit.refresh_from_db()
        assert audit.status == "succeeded", audit.error
        assert len(set(AuditChunk.objects.filter(audit=audit).values_list("worker", flat=True))) == 1  # this process
        assert audit.results.get(stage="detector").data["available"]
        _shared[key] = _results(audit)
        settings.DERMAUDIT_FEATURE_CACHE = features
    return _shared[key]


def _wait_finished(audit: Audit, pool, names: list[str], timeout: float = 600) -> Audit:
    try:
        wait_for(lambda: Audit.objects.get(pk=audit.pk).status in {"succeeded", "failed"}, timeout, message="the audit")
    except TimeoutError:
        pytest.fail("audit did not finish:\n" + "\n".join(f"--- {n}\n{pool.log(n)[-4000:]}" for n in names))
    audit.refresh_from_db()
    assert audit.status == "succeeded", (audit.error, [pool.log(n)[-3000:] for n in names])
    return audit


def _assert_no_duplicates(audit: Audit, feature_cache: Path, n_chunks: int) -> None:
    assert sorted(AuditResult.objects.filter(audit=audit).values_list("stage", flat=True)) == sorted(STAGES[1:])
    assert Report.objects.filter(audit=audit).count() == 1
    assert AuditChunk.objects.filter(audit=audit).count() == n_chunks
    assert not AuditChunk.objects.filter(audit=audit, done=False).exists()
    assert not AuditChunk.objects.filter(audit=audit).exclude(claimed_by="").exists()  # every claim released
    images = Image.objects.filter(image_set__in=[audit.reference_set, audit.generated_set])
    assert images.count() == N_REFERENCE + N_GENERATED
    assert not images.filter(phototype_method="").exists()  # every image estimated (once: one row per image)
    cached = sorted(p.stem for p in feature_cache.rglob("*.npy") if not p.name.startswith(".tmp-"))
    assert cached == sorted(set(images.values_list("sha256", flat=True)))  # one feature file per image content


def test_two_workers_share_one_audit_with_the_eager_numbers(audit_settings, isic_dir, pad_dir, tmp_path):
    expected = _eager_numbers(isic_dir, pad_dir, tmp_path, audit_settings)
    audit_settings.DERMAUDIT_FEATURE_CACHE = tmp_path / "worker-features"  # the workers extract every feature
    audit = _new_audit("Distributed clinic", isic_dir, pad_dir, tmp_path)

    with worker_pool(tmp_path, audit_settings.MEDIA_ROOT, env=WORKER_ENV) as pool:
        pool.start("w1")
        pool.start("w2")
        pool.wait_ready("w1", "w2")
        audit = pipeline.start_audit(audit, enqueue=lambda audit_id: pool.send("auditor.run_audit", audit_id))
        n_chunks = AuditChunk.objects.filter(audit=audit).count()
        audit = _wait_finished(audit, pool, ["w1", "w2"])

    assert n_chunks == -(-(N_REFERENCE + N_GENERATED) // CHUNK_SIZE)
    workers = list(AuditChunk.objects.filter(audit=audit).values_list("worker", flat=True))
    assert set(workers) == {pool.hostname("w1"), pool.hostname("w2")}, workers
    assert list(AuditChunk.objects.filter(audit=audit).values_list("attempts", flat=True)) == [1] * n_chunks
    _assert_no_duplicates(audit, tmp_path / "worker-features", n_chunks)
    assert _results(audit) == expected


def test_worker_killed_during_feature_extraction(audit_settings, isic_dir, pad_dir, tmp_path):
    expected = _eager_numbers(isic_dir, pad_dir, tmp_path, audit_settings)
    audit_settings.DERMAUDIT_FEATURE_CACHE = tmp_path / "worker-features"
    audit = _new_audit("Killed clinic", isic_dir, pad_dir, tmp_path, with_detector=False)
    chunks = AuditChunk.objects.filter(audit=audit)

    with worker_pool(tmp_path, audit_settings.MEDIA_ROOT, env=WORKER_ENV) as pool:
        worker = pool.start("w1")
        pool.wait_ready("w1")
        audit = pipeline.start_audit(audit, enqueue=lambda audit_id: pool.send("auditor.run_audit", audit_id))
        n_chunks = chunks.count()
        # At least one chunk done, one just taken (so it is mid-extraction when the kill lands), others not started.
        wait_for(lambda: chunks.filter(done=True).exists() and chunks.filter(
                     done=False, claimed_at__gt=timezone.now() - timedelta(seconds=0.5)).exclude(claimed_by="").exists(),
                 300, interval=0.1, message="a chunk just taken after a finished one")
        pool.kill(worker)  # SIGKILL to the worker's process group: the main process and its pool child
        interrupted = chunks.get(done=False, claimed_by=pool.hostname("w1"))
        done_at_kill = chunks.filter(done=True).count()
        assert 1 <= done_at_kill < n_chunks - 1

        pool.start("w1")  # its supervisor restarts it under the same name
        audit = _wait_finished(audit, pool, ["w1"])

    log = pool.log("w1")
    assert f"audit recovery at start-up of {pool.hostname('w1')}: re-enqueued chunks [{interrupted.pk}]" in log, log[-4000:]
    interrupted.refresh_from_db()
    assert (interrupted.done, interrupted.attempts) == (True, 2)  # taken once by each incarnation of w1
    assert list(chunks.exclude(pk=interrupted.pk).values_list("attempts", flat=True)) == [1] * (n_chunks - 1)
    _assert_no_duplicates(audit, tmp_path / "worker-features", n_chunks)
    assert _results(audit, PER_IMAGE_STAGES) == {stage: expected[stage] for stage in PER_IMAGE_STAGES}


def test_racing_continue_tasks_run_the_set_level_stages_once(audit_settings, isic_dir, pad_dir, tmp_path):
    expected = _eager_numbers(isic_dir, pad_dir, tmp_path, audit_settings)
    audit_settings.DERMAUDIT_FEATURE_CACHE = tmp_path / "race-features"
    audit = _new_audit("Race clinic", isic_dir, pad_dir, tmp_path, with_detector=False)
    audit = pipeline.start_audit(audit, enqueue=lambda audit_id: None)  # the chunks are done here, below
    finished = [pipeline.run_chunk(chunk_id, worker="test-process") for chunk_id in pipeline.pending_chunks(audit.pk)]
    assert finished.count(True) == 1 and finished[-1]  # the last chunk moved the audit on, exactly once

    with worker_pool(tmp_path, audit_settings.MEDIA_ROOT, env=WORKER_ENV) as pool:
        pool.start("w1")
        pool.start("w2")
        pool.wait_ready("w1", "w2")
        pool.send("auditor.continue_audit", audit.pk)  # e.g. a redelivery beside the original: one task each
        pool.send("auditor.continue_audit", audit.pk)
        audit = _wait_finished(audit, pool, ["w1", "w2"])
        logs = pool.log("w1") + pool.log("w2")

    # Two continue tasks, plus possibly a third from the workers' start-up recovery (nobody had sent one after the
    # last chunk here, and the reservation may have run out while they started): one runs the stages.
    ran = re.findall(r"'ran_stages': (True|False)", logs)
    assert ran.count("True") == 1 and ran.count("False") >= 1, logs[-4000:]
    assert "set-level stages held by" in logs  # a loser found the winner's live lease, not a finished audit
    _assert_no_duplicates(audit, tmp_path / "race-features", AuditChunk.objects.filter(audit=audit).count())
    assert _results(audit, PER_IMAGE_STAGES) == {stage: expected[stage] for stage in PER_IMAGE_STAGES}
