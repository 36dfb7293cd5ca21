"""The detector as a service: start and cancel training runs, score whole image sets, summarise the scores.

Per-image probabilities come from auditor.detectors.score_images (stored once per detector and image, never
overwritten); this module adds the set-level view: progress while a set is scored, and a summary with an AUC
where the set's class is known. Used by the API, the web pages and the Celery tasks alike.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from django.db import transaction
from django.utils import timezone

from .models import DetectorRun, DetectorScoring, Image, ImageScore, ImageSet
from .models.training import TrainingStatus

MIN_IMAGES_PER_CLASS = 20  # auditor.detectors refuses fewer; checked here before anything is queued
SCORING_CHUNK = 256  # images decoded and scored at a time; progress is written after each chunk
MIN_IMAGES_FOR_AUC = 5  # per class, after removing images the detector trained on
N_BOOTSTRAP = 1000
THRESHOLD = 0.5
ACTIVE_SCORING = (DetectorScoring.Status.QUEUED, DetectorScoring.Status.RUNNING)


class ScoringError(Exception):
    pass


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
    from .detector_tasks import train_detector_task

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
    from .detector_tasks import score_image_set_task

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


def mark_scoring_failed(scoring_id: int, message: str) -> None:
    DetectorScoring.objects.filter(pk=scoring_id).update(status=DetectorScoring.Status.FAILED, message=message,
                                                         finished_at=timezone.now())


def score_image_set(scoring: DetectorScoring) -> DetectorScoring:
    """Score every image of the set (only those without a stored score go through the model), then summarise."""
    run, image_set = scoring.detector, scoring.image_set
    images = list(image_set.images.order_by("id"))
    DetectorScoring.objects.filter(pk=scoring.pk).update(status=DetectorScoring.Status.RUNNING, started_at=timezone.now(),
                                                         finished_at=None, total=len(images), processed=0, message="")
    if not images:
        raise ScoringError(f"image set {image_set.name!r} has no images to score")
    scorer = _Scorer(run)
    probabilities = scorer.score(images, on_chunk=lambda done: DetectorScoring.objects.filter(pk=scoring.pk).update(processed=done))
    computed = scorer.computed  # before the AUC scores its comparison images
    summary = summarise(run, image_set, images, probabilities, scorer)
    DetectorScoring.objects.filter(pk=scoring.pk).update(
        status=DetectorScoring.Status.SUCCEEDED, summary=summary, processed=len(images), finished_at=timezone.now(),
        message=f"{len(images)} images scored ({computed} through the model, the rest already stored)")
    scoring.refresh_from_db()
    return scoring


class _Scorer:
    """Scores image rows a chunk at a time, loading the model only when some image has no stored score."""

    def __init__(self, run: DetectorRun):
        self.run = run
        self.detector = None
        self.computed = 0

    def score(self, images: list[Image], on_chunk=None) -> np.ndarray:
        from .detectors import load, score_images

        missing_files = [image for image in images if not Path(image.path).is_file()]
        if missing_files:
            named = ", ".join(f"{i.original_name} ({i.file})" for i in missing_files[:5])
            raise ScoringError(f"{len(missing_files)} image file(s) missing from storage: {named}")
        parts = []
        for start in range(0, len(images), SCORING_CHUNK):
            chunk = images[start:start + SCORING_CHUNK]
            unscored = _reuse_scores_of_same_content(self.run, chunk)
            if unscored and self.detector is None:
                self.detector = load(self.run)
            self.computed += unscored
            parts.append(score_images(self.run, chunk, self.detector))
            if on_chunk is not None:
                on_chunk(start + len(chunk))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float64)


def _reuse_scores_of_same_content(run: DetectorRun, images: list[Image]) -> int:
    """Copy the stored score of an identical file (same SHA-256, another row) instead of scoring it again; returns
    how many images still need the model."""
    scored = set(ImageScore.objects.filter(detector=run, image__in=images).values_list("image_id", flat=True))
    unscored = [image for image in images if image.pk not in scored]
    if not unscored:
        return 0
    by_content = dict(ImageScore.objects.filter(detector=run, image__sha256__in={i.sha256 for i in unscored})
                      .values_list("image__sha256", "probability_synthetic"))
    copies = [ImageScore(detector=run, image=image, probability_synthetic=by_content[image.sha256])
              for image in unscored if image.sha256 in by_content]
    ImageScore.objects.bulk_create(copies, ignore_conflicts=True)
    return len(unscored) - len(copies)


# --- the set-level summary ------------------------------------------------------------------------------------------

def set_class(run: DetectorRun, image_set: ImageSet) -> tuple[str | None, str]:
    """What the set's images truly are, as far as the service knows, and why."""
    if image_set.pk == run.reference_set_id:
        return "real", "the detector's own reference set"
    if run.synthetic_sets.filter(pk=image_set.pk).exists():
        return "synthetic", "one of the detector's synthetic training sets"
    if image_set.kind in (ImageSet.Kind.GENERATED, ImageSet.Kind.BASELINE):
        return "synthetic", f"a {image_set.kind} set, labelled synthetic"
    if image_set.kind == ImageSet.Kind.REFERENCE:
        return "real", "a reference set of real images, not the detector's own"
    return None, f"a {image_set.kind} set: class unknown"


def summarise(run: DetectorRun, image_set: ImageSet, images: list[Image], probabilities: np.ndarray,
              scorer: _Scorer) -> dict:
    p = np.asarray(probabilities, dtype=np.float64)
    truth, basis = set_class(run, image_set)
    summary = {
        "n": int(len(p)),
        "mean_probability_synthetic": float(p.mean()),
        "median_probability_synthetic": float(np.median(p)),
        "threshold": THRESHOLD,
        "n_above_0_5": int((p >= THRESHOLD).sum()),
        "share_above_0_5": float((p >= THRESHOLD).mean()),
        "set_class": truth,
        "set_class_basis": basis,
        "detector_run": run.pk,
        "detector_sha256": run.checkpoint_sha256,
        "image_set": image_set.pk,
        "image_set_manifest_sha256": image_set.manifest_sha256,
    }
    summary["auc"] = _auc(run, images, p, truth, scorer) if truth else {"available": False, "reason": basis}
    return summary


def _auc(run: DetectorRun, images: list[Image], probabilities: np.ndarray, truth: str, scorer: _Scorer) -> dict:
    """AUC of this set against the opposite class among the detector's held-out test images, with a
    class-stratified bootstrap CI. Images the detector trained or validated on are left out on both sides."""
    from deepfake_detector.evaluate import bootstrap_metric, roc_auc

    held_out = set(run.evaluation.get("test_image_sha256", []))
    training_set_ids = [run.reference_set_id, *run.synthetic_sets.values_list("pk", flat=True)]
    seen = set(Image.objects.filter(image_set_id__in=training_set_ids).values_list("sha256", flat=True)) - held_out
    keep = [k for k, image in enumerate(images) if image.sha256 not in seen]
    own_content = {images[k].sha256 for k in keep}
    opposite_sets = [run.reference_set_id] if truth == "synthetic" else list(run.synthetic_sets.values_list("pk", flat=True))
    opposite, opposite_content = [], set()
    for image in Image.objects.filter(image_set_id__in=opposite_sets, sha256__in=held_out).order_by("id"):
        if image.sha256 not in own_content and image.sha256 not in opposite_content:
            opposite.append(image)
            opposite_content.add(image.sha256)
    opposite_class = "real" if truth == "synthetic" else "synthetic"
    described = {
        "this_set_class": truth, "compared_with": f"held-out {opposite_class} test images of the detector",
        "n_this_set": len(keep), "n_excluded_seen_in_training": len(images) - len(keep), "n_compared": len(opposite),
    }
    if len(keep) < MIN_IMAGES_FOR_AUC or len(opposite) < MIN_IMAGES_FOR_AUC:
        return {"available": False, **described,
                "reason": f"needs at least {MIN_IMAGES_FOR_AUC} images of each class that the detector did not train on "
                          f"(this set: {len(keep)}, held-out {opposite_class}: {len(opposite)})"}
    own_label = 1 if truth == "synthetic" else 0
    labels = np.array([own_label] * len(keep) + [1 - own_label] * len(opposite), dtype=np.int64)
    scores = np.concatenate([probabilities[keep], scorer.score(opposite)])
    metric = bootstrap_metric(roc_auc, labels, scores, n_bootstrap=N_BOOTSTRAP, seed=run.seed)
    return {"available": True, "value": metric.value, "ci_low": metric.ci_low, "ci_high": metric.ci_high,
            "confidence": 0.95, "n_bootstrap": N_BOOTSTRAP, "bootstrap_seed": run.seed, **described}
