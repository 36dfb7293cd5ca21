"""The detector as a service: check inputs, queue training runs and scorings (API and web pages call these).

The work itself runs in the Celery tasks of auditor.detection.tasks: training in auditor.detection.runs, scoring
in auditor.detection.scoring.
"""
from __future__ import annotations

from django.db import transaction

from auditor.detection.scoring import ScoringError
from auditor.detection.tasks import score_image_set_task, train_detector_task
from auditor.models import DetectorRun, DetectorScoring, Image, ImageSet
from auditor.models.training import TrainingStatus

MIN_IMAGES_PER_CLASS = 20  # auditor.detection.runs refuses fewer; checked here before anything is queued
ACTIVE_SCORING = (DetectorScoring.Status.QUEUED, DetectorScoring.Status.RUNNING)


# --- training runs -------------------------------------------------------------------------------------------------

def training_set_problems(reference: ImageSet, synthetic_sets: list[ImageSet]) -> dict[str, str]:
    """Why these sets cannot train a detector (field -> reason); empty when they can."""
    problems: dict[str, str] = {}
    if not synthetic_sets:
        problems["synthetic_sets"] = "choose at least one synthetic image set"
        return problems
    if any(s.pk == reference.pk for s in synthetic_sets):
        problems["synthetic_sets"] = f"the reference set {reference.name!r} cannot also be a synthetic set"
        return problems
    foreign = [s.name for s in synthetic_sets if s.organisation_id != reference.organisation_id]
    if foreign:
        problems["synthetic_sets"] = f"{', '.join(foreign)} belong(s) to another organisation than the reference set"
        return problems
    n_real = reference.images.count()
    if n_real < MIN_IMAGES_PER_CLASS:
        problems["reference_set"] = (f"reference set {reference.name!r} has {n_real} images; a detector needs at least "
                                     f"{MIN_IMAGES_PER_CLASS} real images")
    n_synthetic = Image.objects.filter(image_set__in=synthetic_sets).count()
    if n_synthetic < MIN_IMAGES_PER_CLASS:
        names = ", ".join(repr(s.name) for s in synthetic_sets)
        problems["synthetic_sets"] = (f"the synthetic sets ({names}) hold {n_synthetic} images together; a detector "
                                      f"needs at least {MIN_IMAGES_PER_CLASS} synthetic images")
    return problems


def create_detector_run(reference: ImageSet, synthetic_sets: list[ImageSet], *, minutes: float, seed: int = 0,
                        max_epochs: int | None = None, user=None) -> DetectorRun:
    """A queued run; training starts (a Celery task) when the surrounding transaction commits."""
    config = {"train": {"max_epochs": max_epochs}} if max_epochs else {}
    with transaction.atomic():
        run = DetectorRun.objects.create(organisation=reference.organisation, created_by=user, reference_set=reference,
                                         seed=seed, max_seconds=minutes * 60, config=config)
        run.synthetic_sets.set(synthetic_sets)
        transaction.on_commit(lambda: train_detector_task.delay(run.pk))
    return run


# --- scoring --------------------------------------------------------------------------------------------------------

def request_scoring(run: DetectorRun, image_set: ImageSet, user=None) -> DetectorScoring:
    """Queue scoring `image_set` with `run` (one scoring per pair; asking again re-scores what is new and
    recomputes the summary, while a scoring already queued or running is returned as it is)."""
    if run.status != TrainingStatus.SUCCEEDED or not run.checkpoint_sha256:
        raise ScoringError(f"detector run {run.pk} has no trained model (status {run.status}); "
                           "a set can be scored once training has succeeded")
    if image_set.organisation_id != run.organisation_id:
        raise ScoringError(f"image set {image_set.pk} does not exist")  # another organisation's: looks absent
    if not image_set.images.exists():
        raise ScoringError(f"image set {image_set.name!r} has no images to score")
    with transaction.atomic():
        scoring, created = DetectorScoring.objects.select_for_update().get_or_create(
            detector=run, image_set=image_set, defaults={"created_by": user})
        if not created and scoring.status in ACTIVE_SCORING:
            return scoring
        if not created:
            DetectorScoring.objects.filter(pk=scoring.pk).update(
                status=DetectorScoring.Status.QUEUED, processed=0, message="", started_at=None, finished_at=None)
            scoring.refresh_from_db()
        transaction.on_commit(lambda: score_image_set_task.delay(scoring.pk))
    return scoring
