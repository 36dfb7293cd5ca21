"""Celery tasks for the detector service: train a DetectorRun, score an image set with a trained one.

Thin wrappers (auditor.detection.scoring and auditor.detection.runs do the work); queued by
auditor.detection.service. Workers register them through the Celery app's autodiscovery; heavy imports (torch)
happen inside the tasks.
"""
from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from auditor.models import DetectorRun, DetectorScoring
from auditor.models.training import TrainingStatus


@shared_task(bind=True, acks_late=True, name="auditor.train_detector")
def train_detector_task(self, run_id: int) -> dict:
    from auditor.detection.runs import DetectorError, train_detector_run

    run = DetectorRun.objects.select_related("reference_set").get(pk=run_id)
    if run.status in {TrainingStatus.SUCCEEDED, TrainingStatus.CANCELLED}:
        return {"run": run_id, "status": run.status}  # redelivered after it finished: nothing to do
    if run.cancel_requested:
        DetectorRun.objects.filter(pk=run_id).update(status=TrainingStatus.CANCELLED, finished_at=timezone.now(),
                                                     message="cancelled before training started")
        return {"run": run_id, "status": TrainingStatus.CANCELLED}
    try:
        run = train_detector_run(run)
    except DetectorError as exc:  # the inputs cannot train a detector: recorded on the run, nothing to retry
        _mark_run_failed(run_id, str(exc))
        return {"run": run_id, "status": TrainingStatus.FAILED}
    except Exception as exc:
        _mark_run_failed(run_id, f"{type(exc).__name__}: {exc}")
        raise
    return {"run": run_id, "status": run.status, "checkpoint_sha256": run.checkpoint_sha256}


def _mark_run_failed(run_id: int, message: str) -> None:
    DetectorRun.objects.filter(pk=run_id).update(status=TrainingStatus.FAILED, message=message, finished_at=timezone.now())


@shared_task(bind=True, acks_late=True, name="auditor.score_image_set")
def score_image_set_task(self, scoring_id: int) -> dict:
    from auditor.detection.scoring import ScoringError, mark_scoring_failed, score_image_set

    scoring = DetectorScoring.objects.select_related("detector", "image_set").get(pk=scoring_id)
    if scoring.status == DetectorScoring.Status.SUCCEEDED:
        return {"scoring": scoring_id, "status": scoring.status}
    try:
        scoring = score_image_set(scoring)
    except ScoringError as exc:
        mark_scoring_failed(scoring_id, str(exc))
        return {"scoring": scoring_id, "status": DetectorScoring.Status.FAILED}
    except Exception as exc:
        mark_scoring_failed(scoring_id, f"{type(exc).__name__}: {exc}")
        raise
    return {"scoring": scoring_id, "status": scoring.status, "n": scoring.summary.get("n")}
