"""What `train_baseline` and `train_detector` share: find image sets by id or name, and run a training run as its
Celery task — on the workers when a broker is configured (the command waits and prints progress; Ctrl-C asks the
run to cancel), in this process under the embedded default (eager Celery)."""
from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.core.management.base import CommandError

from auditor.models import ImageSet
from auditor.models.training import TrainingRun, TrainingStatus

FINISHED = {TrainingStatus.SUCCEEDED, TrainingStatus.CANCELLED, TrainingStatus.FAILED}


def find_image_set(identifier: str) -> ImageSet:
    query = ImageSet.objects.filter(pk=int(identifier)) if identifier.isdigit() else ImageSet.objects.filter(name=identifier)
    image_set = query.first()
    if image_set is None:
        raise CommandError(f"no image set {identifier!r}")
    return image_set


def describe_progress(progress: dict) -> str:
    """One line from a run's progress: step or epoch, elapsed time, and its scalar numbers."""
    parts = []
    for key, value in progress.items():
        if isinstance(value, dict):
            parts += [f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items()
                      if isinstance(v, (int, float, str))]
        elif isinstance(value, float):
            parts.append(f"{key}={value:.3f}")
        elif isinstance(value, (int, str)):
            parts.append(f"{key}={value}")
    return " ".join(parts)


def run_training_task(run: TrainingRun, task, write: Callable[[str], None], *, wait: bool = True,
                      poll_seconds: float = 2.0) -> TrainingRun:
    """Queue `task` for `run`; unless `wait` is False, wait for it to finish, printing progress as it changes."""
    task.delay(run.pk)  # eager Celery: trains here and returns when done
    run.refresh_from_db()
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return run
    if not wait:
        write(f"{type(run).__name__} {run.pk} queued; follow it through the API or the web pages")
        return run
    last = None
    try:
        while run.status not in FINISHED:
            line = describe_progress(run.progress)
            if line and line != last:
                write(f"  [{run.status}] {line}")
                last = line
            time.sleep(poll_seconds)
            run.refresh_from_db()
    except KeyboardInterrupt:
        run.request_cancel()
        raise CommandError(f"interrupted: cancellation of {type(run).__name__} {run.pk} requested "
                           "(the worker stops it at its next progress report)") from None
    return run


def finished_or_fail(run: TrainingRun) -> TrainingRun:
    if run.status == TrainingStatus.FAILED:
        raise CommandError(f"{type(run).__name__} {run.pk} failed: {run.message}")
    return run
