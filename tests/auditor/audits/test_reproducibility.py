"""The same inputs and seed give the same stored numbers on any deployment (issue #18): whatever the number of
workers, the torch threads per chunk and in the set-level stages, the feature batch size, and the database; in the
deployment's default precision (bf16 where the CPU has native BF16) and, on such CPUs, in fp32 too.

Every run is compared with the eager in-process audit of tests/auditor/audits/test_distributed.py (one worker, one
torch thread, batch 16, the test database), stage by stage, every stored number: identical, not close. What makes it
so: features are bit-identical across batches and threads (metrics/extractors.py, "Numerics"), the set-level stages
run at one torch thread and one BLAS thread whatever the deployment (auditor/audits/pipeline.py), and every
computation draws from its own seed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from auditor.audits import pipeline
from auditor.models import AuditChunk
from metrics.features import resolve_precision
from tests.auditor.audits.test_distributed import (  # noqa: F401  (fixtures used by name)
    ALL_STAGES,
    AUDIT_ENV,
    N_GENERATED,
    N_REFERENCE,
    WORKER_ENV,
    _comparable,
    _eager_numbers,
    _new_audit,
    _results,
    _wait_finished,
    audit_settings,
    model_dir,
)
from tests.auditor.audits.test_pipeline import _subset
from tests.support.workers import REPO_ROOT, worker_pool

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.worker]


@pytest.mark.parametrize("workers, threads, batch", [(1, 2, 5), (4, 1, 32)])
def test_same_numbers_with_any_workers_threads_and_batch_size(audit_settings, isic_dir, pad_dir, tmp_path, workers,  # noqa: F811
                                                              threads, batch):
    expected = _eager_numbers(isic_dir, pad_dir, tmp_path, audit_settings)
    audit_settings.DERMAUDIT_FEATURE_CACHE = tmp_path / "matrix-features"  # every feature extracted again
    audit = _new_audit(f"Matrix clinic {workers}x{threads}", isic_dir, pad_dir, tmp_path)
    env = {**WORKER_ENV, "OMP_NUM_THREADS": str(threads), "DERMAUDIT_CHUNK_THREADS": str(threads),
           "DERMAUDIT_FEATURE_BATCH_SIZE": str(batch)}
    names = [f"w{i}" for i in range(1, workers + 1)]
    with worker_pool(tmp_path, audit_settings.MEDIA_ROOT, env=env) as pool:
        for name in names:
            pool.start(name)
        pool.wait_ready(*names)
        audit = pipeline.start_audit(audit, enqueue=lambda audit_id: pool.send("auditor.run_audit", audit_id))
        audit = _wait_finished(audit, pool, names)
        hostnames = {pool.hostname(name) for name in names}
    # The chunks were done by this configuration's workers (not by an eager run in this process).
    assert set(AuditChunk.objects.filter(audit=audit).values_list("worker", flat=True)) <= hostnames
    actual = _results(audit)
    assert [stage for stage in ALL_STAGES if actual[stage] != expected[stage]] == []


@pytest.mark.parametrize("precision", [
    "auto",  # the deployment default: bf16 where the CPU has native BF16, fp32 elsewhere
    pytest.param("fp32", marks=pytest.mark.skipif(resolve_precision("auto") == "fp32", reason="auto is fp32 here")),
])
def test_same_numbers_on_the_embedded_default_in_a_fresh_process(audit_settings, isic_dir, pad_dir, tmp_path,  # noqa: F811
                                                                 precision):
    """The test database (PostgreSQL + Redis in CI) against SQLite with eager Celery in another process, at two torch
    threads and another batch size, in each precision this CPU runs. Stages that read the screen detector are left
    out: the embedded audit has none."""
    audit_settings.DERMAUDIT_FEATURE_PRECISION = precision
    expected = _eager_numbers(isic_dir, pad_dir, tmp_path, audit_settings)
    reference = _subset(isic_dir, tmp_path, "embedded-ref", N_REFERENCE, step=9)
    generated = _subset(pad_dir, tmp_path, "embedded-gen", N_GENERATED, step=11)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DERMAUDIT_")}, **AUDIT_ENV,
           "OMP_NUM_THREADS": "2", "DERMAUDIT_FEATURE_BATCH_SIZE": "7", "DERMAUDIT_FEATURE_PRECISION": precision}
    finished = subprocess.run([sys.executable, str(REPO_ROOT / "tests" / "support" / "embedded_audit.py"),
                               str(tmp_path / "embedded-var"), str(reference), str(generated)],
                              cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    line = next((out for out in finished.stdout.splitlines() if out.startswith("RESULTS ")), None)
    assert line is not None, finished.stdout[-3000:] + finished.stderr[-5000:]
    embedded = json.loads(line[len("RESULTS "):])
    assert embedded["status"] == "succeeded", embedded["error"]
    assert embedded["feature_precision"] == resolve_precision(precision)  # resolved when it started, and recorded
    compared = [stage for stage in ALL_STAGES if stage != "detector"]
    actual = {stage: json.dumps(_comparable(embedded["stages"][stage]), sort_keys=True) for stage in compared}
    assert [stage for stage in compared if actual[stage] != expected[stage]] == []
