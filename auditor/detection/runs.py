"""The service around the synthetic-image detector (deepfake_detector): train runs and per-image scores."""
from __future__ import annotations

import time

import numpy as np
from django.utils import timezone

import deepfake_detector as dd
from auditor.generation.runs import model_folder
from auditor.models import DetectorRun, Image, ImageScore
from auditor.models.training import TrainingStatus

PROGRESS_INTERVAL_S = 2.0


class DetectorError(Exception):
    pass


def _images(image_set) -> list[Image]:
    return list(image_set.images.order_by("sha256", "id"))


def standardised(images: list[Image], preprocessing: dd.Preprocessing) -> np.ndarray:
    """Both classes go through the same decode → RGB → resize → JPEG re-encode, whatever their file format."""
    return dd.standardise_images([image.path for image in images], preprocessing)


def train_detector_run(run: DetectorRun) -> DetectorRun:
    DetectorRun.objects.filter(pk=run.pk).update(status=TrainingStatus.RUNNING, started_at=timezone.now())
    real_images = _images(run.reference_set)
    synthetic_images = [image for s in run.synthetic_sets.order_by("pk") for image in _images(s)]
    if len(real_images) < 20 or len(synthetic_images) < 20:
        raise DetectorError(f"a detector needs at least 20 real and 20 synthetic images; got {len(real_images)} and "
                            f"{len(synthetic_images)}")
    config = dd.TrainConfig(seed=run.seed, time_budget_s=run.max_seconds or 15 * 60, **run.config.get("train", {}))
    real = standardised(real_images, config.preprocessing)
    synthetic = standardised(synthetic_images, config.preprocessing)
    # Split by patient where the labels name one, so no patient is in two splits.
    real_groups = [image.extra_labels.get("patient_id") or None for image in real_images]
    dataset = dd.LabelledImages.from_classes(real, synthetic, real_groups=real_groups)
    split = dd.split_by_group(dataset.labels, dataset.groups, seed=run.seed)
    last = {"t": 0.0, "cancel": False}

    def report(progress: dd.TrainingProgress) -> None:
        now = time.monotonic()
        if now - last["t"] < PROGRESS_INTERVAL_S:
            return
        last["t"] = now
        DetectorRun.objects.filter(pk=run.pk).update(progress=_progress_dict(progress))
        last["cancel"] = DetectorRun.objects.filter(pk=run.pk, cancel_requested=True).exists()

    manifests = {"real": run.reference_set.manifest_sha256,
                 **{f"synthetic:{s.name}": s.manifest_sha256 for s in run.synthetic_sets.all()}}
    try:
        result = dd.train_detector(dataset, split, config, manifests=manifests, progress=report,
                                   should_stop=lambda: last["cancel"])
    except dd.TrainingCancelled:
        DetectorRun.objects.filter(pk=run.pk).update(status=TrainingStatus.CANCELLED, finished_at=timezone.now(),
                                                     message="cancelled before a usable model existed")
        run.refresh_from_db()
        return run
    test = dataset.subset(split.test)
    all_images = real_images + synthetic_images
    phototypes = [_phototype(all_images[i]) for i in split.test]
    evaluation = dd.evaluate_detector(result.detector, test.images, test.labels,
                                      group_labels=[p[0] for p in phototypes], group_estimated=[p[1] for p in phototypes],
                                      n_bootstrap=500, seed=run.seed).to_dict()
    evaluation["test_image_sha256"] = sorted({all_images[i].sha256 for i in split.test})
    evaluation["training"] = {"best_epoch": result.best_epoch, "stopped_reason": result.stopped_reason,
                              "wall_s": round(result.wall_s, 1), "validation": result.validation,
                              "n_train": len(split.train), "n_validation": len(split.validation), "n_test": len(split.test)}
    path = model_folder("detectors") / f"detector-{run.pk}.pt"
    sha256 = dd.save_detector(result.detector, path, extra_metrics={"test_auc": evaluation["overall"]["roc_auc"]["value"]})
    DetectorRun.objects.filter(pk=run.pk).update(
        status=TrainingStatus.SUCCEEDED, checkpoint=str(path), checkpoint_sha256=sha256, evaluation=evaluation,
        finished_at=timezone.now(), message=f"{result.stopped_reason} after {result.wall_s:.0f} s",
        # The last epoch's record, which the throttled reports may have skipped (run.progress here is the stale copy).
        progress={**(_progress_dict(result.history[-1]) if result.history else {}), "fraction_done": 1.0})
    run.refresh_from_db()
    return run


def _progress_dict(progress: dd.TrainingProgress) -> dict:
    return {"epoch": progress.epoch, "max_epochs": progress.max_epochs, "steps": progress.steps,
            "train_loss": progress.train_loss, "validation_loss": progress.validation_loss,
            "validation_auc": progress.validation_auc, "elapsed_seconds": round(progress.elapsed_s, 1),
            "fraction_done": round(progress.fraction_done, 4)}


def _phototype(image: Image) -> tuple[str | None, bool]:
    if image.fitzpatrick:
        return str(image.fitzpatrick), False
    if image.fitzpatrick_estimate:
        return str(image.fitzpatrick_estimate), True
    return None, False


def load(run: DetectorRun) -> dd.Detector:
    if run.status != TrainingStatus.SUCCEEDED or not run.checkpoint_sha256:
        raise DetectorError(f"detector run {run.pk} has no trained model (status {run.status})")
    return dd.load_detector(run.checkpoint, expected_sha256=run.checkpoint_sha256, device="cpu")


def score_images(run: DetectorRun, images: list[Image], detector: dd.Detector | None = None) -> np.ndarray:
    """Calibrated P(synthetic) per image, stored once per (detector, image) and reused."""
    known = dict(ImageScore.objects.filter(detector=run, image__in=images).values_list("image_id", "probability_synthetic"))
    missing = [image for image in images if image.pk not in known]
    if missing:
        detector = detector or load(run)
        probabilities = dd.score_images(detector, standardised(missing, detector.preprocessing))
        store_scores(run, missing, probabilities)
        known.update({image.pk: float(p) for image, p in zip(missing, probabilities)})
    return np.array([known[image.pk] for image in images], dtype=np.float64)


def store_scores(run: DetectorRun, images: list[Image], probabilities: np.ndarray) -> None:
    """Keep P(synthetic) per image (the first stored value wins: a detector scores an image once)."""
    ImageScore.objects.bulk_create(
        [ImageScore(detector=run, image=image, probability_synthetic=float(p)) for image, p in zip(images, probabilities)],
        ignore_conflicts=True)
