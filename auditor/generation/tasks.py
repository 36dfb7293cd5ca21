"""Celery task of the generation domain: train a reference generator run (thin: auditor.generation.runs works)."""
from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from auditor.models import GeneratorRun


@shared_task(bind=True, acks_late=True, name="auditor.train_generator")
def train_generator_task(self, run_id: int) -> dict:
    from auditor.generation.runs import train_generator  # torch loads in the worker, not in web processes

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
