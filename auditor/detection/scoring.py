"""Scoring whole image sets with a trained detector (the worker's side), and summarising the scores.

Per-image probabilities come from auditor.detection.runs.score_images (stored once per detector and image, never
overwritten); this module adds the set-level view: progress while a set is scored, and a summary with an AUC
where the set's class is known. Requests to score a set are queued by auditor.detection.service.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from django.utils import timezone

from auditor.models import DetectorRun, DetectorScoring, Image, ImageScore, ImageSet

SCORING_CHUNK = 256  # images decoded and scored at a time; progress is written after each chunk
MIN_IMAGES_FOR_AUC = 5  # per class, after removing images the detector trained on
N_BOOTSTRAP = 1000
THRESHOLD = 0.5


class ScoringError(Exception):
    pass


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
        from auditor.detection.runs import load, score_images

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
