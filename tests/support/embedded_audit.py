"""Run one audit on the embedded default (SQLite, eager Celery, local media) in a fresh process; print its results.

    python tests/support/embedded_audit.py VAR_DIR REFERENCE_FOLDER GENERATED_FOLDER

The reproducibility test runs this beside the test database (PostgreSQL in CI) and compares the numbers. The sets
get the names the test's own audits use (results quote them); everything else is the model's defaults.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def main(var_dir: str, reference_folder: str, generated_folder: str) -> None:
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_CACHE_URL", "MEDIA_ROOT", "DERMAUDIT_FEATURE_CACHE",
                 "DERMAUDIT_MODEL_DIR"):
        os.environ.pop(name, None)
    os.environ["DERMAUDIT_VAR_DIR"] = var_dir
    os.environ["DJANGO_SETTINGS_MODULE"] = "auditor.settings"
    sys.path.insert(0, str(REPO_ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    from auditor.audits import pipeline
    from auditor.audits.tasks import run_audit_task
    from auditor.ingestion.importer import run_ingest
    from auditor.models import Audit, AuditResult, ImageSet, IngestJob, Organisation

    call_command("migrate", verbosity=0)
    org = Organisation.objects.create(name="Embedded clinic")
    sets = []
    for name, kind, folder, extra in (
            ("isic-reference", "reference", reference_folder, {}),
            ("pad-as-generated", "generated", generated_folder,
             {"generator_name": "(clinical photos posing as a generator)", "intended_use": "test"})):
        image_set = ImageSet.objects.create(organisation=org, name=name, kind=kind, **extra)
        job = IngestJob.objects.create(image_set=image_set, source="test", source_paths=[folder])
        run_ingest(job, [Path(folder)])
        sets.append(image_set)
    audit = Audit.objects.create(organisation=org, name="embedded", reference_set=sets[0], generated_set=sets[1],
                                 include_copy_baseline=True, criteria={"utility_gain": {"label": "benign_malignant"}})
    pipeline.start_audit(audit, enqueue=lambda audit_id: run_audit_task.delay(audit_id))  # eager: runs now
    audit.refresh_from_db()
    print("RESULTS " + json.dumps({"status": audit.status, "error": audit.error,
                                   "feature_precision": audit.feature_precision,
                                   "stages": {r.stage: r.data for r in AuditResult.objects.filter(audit=audit)}}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
