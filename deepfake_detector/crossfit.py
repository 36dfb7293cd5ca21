"""Detectability with the ViT detector: train it on *this* generated set against real images, cross-fitted.

The classifier two-sample test of `metrics.detectability`, with the detector network in place of the feature probe:
k folds (stratified, grouped when groups are known, from `crossfit_folds`); fold model k trains on the rows with
``fold_of != k`` (a small stratified inner validation subset of those rows picks the best epoch and fits the
temperature) and scores only fold k. The AUC of the pooled out-of-fold P(synthetic), with DeLong's CI, is the
detectability, in the same `Detectability` result the probe returns, so the audit can show both side by side.

Each fold trains for a fixed number of epochs (no time budget, no early stopping), so a result is a function of the
inputs and the seed: a re-run on CPU gives bit-identical scores. With `steps`, the epochs of a fold are as many as
reach that many optimiser steps on its training rows (at most `epochs`): a small set gets more passes, a large one
fewer, for the same amount of learning — still a function of the inputs alone. No permutation null: that would mean
training the ViT hundreds of times.

The audit reads native-resolution crops (`AUDIT_NATIVE_PREPROCESSING`, deepfake_detector/crops.py): the whole-image
resize to 64 px removed the traces a generator's upsampling leaves (measured there). Its augmentation is none beyond
the random crop position: both classes pass through identical processing, so a two-sample test needs no robustness,
and blur or JPEG re-compression erase the pixel-scale traces it looks for.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from deepfake_detector.augment import WangAugmentation
from deepfake_detector.data import DataSplit, LabelledImages, Preprocessing
from deepfake_detector.model import Detector, DetectorConfig
from deepfake_detector.scoring import Images, score_images
from deepfake_detector.train import TrainConfig, TrainingProgress, train_detector
from metrics.detectability import Detectability, auc_interval, crossfit_folds, pooled_groups
from metrics.results import InsufficientSamplesError, Seed, resolve_seed, to_jsonable
from metrics.torch_threads import intra_op_threads

# Two 64-dim blocks: on 2 CPU cores this one reached AUC 0.945 isic-uda1 vs pad-ufes-20 (0.502 on random isic
# halves) in 150 s, while the default 6-block, 192-dim detector learned nothing in that time.
AUDIT_SCALE_MODEL = DetectorConfig(embed_dim=64, depth=2, num_heads=2, patch_size=8, img_size=64, input="npr")
# Wang-style blur, JPEG and whole-patch shifts, but no flips: a flip moves every 2 x 2 cell's anchor pixel, which
# inverts the sign of the periodic residuals the NPR input looks at. A two-sample test gains nothing from that
# invariance and a few epochs cannot learn it: with flips, 5 epochs on 60 + 60 images of a checkerboarded
# upsampling artefact gave fold AUCs 1.0, 1.0 and 0.0 (a model keyed to the unseen phase); without, 1.0 in all.
AUDIT_AUGMENTATION = WangAugmentation(horizontal_flip=False, vertical_flip=False)
# Native crops of 64 px from a centred window of at most 128 px (4 tiles scored per image). Measured on isic-uda1
# halves (139 vs 139, 3-fold, 20 epochs = 100 steps per fold): a 2x bilinear upsampling trace AUC 0.977 with 128-px
# windows, 0.961 with 192; nearest 0.997 and 0.988; real against real 0.52 and 0.50; 192 costs 9 tiles per image.
AUDIT_NATIVE_PREPROCESSING = Preprocessing(size=64, window=128)
AUDIT_NATIVE_MODEL = DetectorConfig(embed_dim=64, depth=2, num_heads=2, patch_size=8, img_size=64, input="npr",
                                    drop_path_rate=0.0)  # no stochastic depth: no draw from torch's global RNG
AUDIT_NATIVE_AUGMENTATION = WangAugmentation(blur_probability=0.0, jpeg_probability=0.0, horizontal_flip=False,
                                             vertical_flip=False, max_translation=0)
# Optimiser steps per fold: 100 reached the AUCs above at 139 + 139 images (50 steps: bilinear 0.87-0.88, which
# misses the 0.9 the hard positive control must reach).
AUDIT_STEPS = 100
AUDIT_BATCH_SIZE = 32  # a few hundred images per fold: 64 would leave only a handful of steps per epoch
# The inner validation subset is one of this many stratified (grouped) parts of a fold's training rows (~1/6).
VALIDATION_PARTS = 6
# Per class: enough that every fold's training rows still hold >= 10 of each class for the inner split.
MIN_IMAGES_PER_CLASS = 20
NO_TIME_BUDGET_S = 1e9  # a fixed number of epochs, never cut short by the clock (that would break reproducibility)


@dataclass
class CrossFitResult:
    detectability: Detectability  # scores = out-of-fold calibrated P(synthetic), real rows first
    fold_models: list[Detector]  # model k trained on the rows with fold_of != k
    training_rows: list[tuple[int, ...]]  # rows model k trained on: its train and inner validation rows
    epochs: int
    per_fold: list[dict[str, Any]]
    training: dict[str, Any] = field(default_factory=dict)  # shared settings: model, preprocessing, augmentation

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready content: everything but the fold models."""
        return {
            item.name: to_jsonable(getattr(self, item.name))
            for item in dataclasses.fields(self)
            if item.name != "fold_models"
        }


def crossfit_detector(
    real: np.ndarray,
    synthetic: np.ndarray,
    *,
    real_groups: Sequence | None = None,
    synthetic_groups: Sequence | None = None,
    folds: int = 3,
    epochs: int = 5,
    model: DetectorConfig = AUDIT_SCALE_MODEL,
    preprocessing: Preprocessing = Preprocessing(),
    augmentation: WangAugmentation = AUDIT_AUGMENTATION,
    batch_size: int = AUDIT_BATCH_SIZE,
    seed: Seed = 0,
    num_threads: int | None = 1,
    confidence: float = 0.95,
    progress: Callable[[int, int], None] | None = None,
    select_best_epoch: bool = True,
    steps: int | None = None,
) -> CrossFitResult:
    """Cross-fitted detector AUC of `synthetic` (label 1) against `real` (label 0).

    Both are standardised uint8 N x S x S x 3 arrays (`data.standardise_images`) with S = ``preprocessing.size``.
    `progress(done, total)` is called after every training epoch, counted over all folds (total = folds x epochs).
    Raises InsufficientSamplesError when a class has fewer than MIN_IMAGES_PER_CLASS images or too few groups.
    """
    start = time.perf_counter()
    real, synthetic = _checked_images(real, "real", model, preprocessing), _checked_images(
        synthetic, "synthetic", model, preprocessing)
    if min(len(real), len(synthetic)) < MIN_IMAGES_PER_CLASS:
        raise InsufficientSamplesError(
            f"the cross-fitted detector needs at least {MIN_IMAGES_PER_CLASS} images of each class, got "
            f"{len(real)} real and {len(synthetic)} synthetic")
    if epochs < 1 or folds < 2:
        raise ValueError("epochs must be >= 1 and folds >= 2")
    recorded, _ = resolve_seed(seed)
    images = np.concatenate([real, synthetic])  # object arrays of native windows concatenate the same way
    labels = np.concatenate([np.zeros(len(real), np.int64), np.ones(len(synthetic), np.int64)])
    groups = pooled_groups(real_groups, synthetic_groups, len(real), len(synthetic))
    fold_of = crossfit_folds(labels, groups, folds, recorded)
    # LabelledImages wants a group per row; train_detector only uses them for its metadata.
    dataset = LabelledImages(images, labels, np.asarray(groups if groups is not None else np.arange(len(labels)),
                                                        dtype=object))

    scores = np.full(len(labels), np.nan)
    fold_models: list[Detector] = []
    training_rows: list[tuple[int, ...]] = []
    per_fold: list[dict[str, Any]] = []
    fold_epochs = []
    for fold in range(folds):
        fold_seed = int(np.random.SeedSequence([recorded % 2**64, fold]).generate_state(1)[0])
        test = np.flatnonzero(fold_of == fold)
        split = _inner_split(np.flatnonzero(fold_of != fold), labels, groups, test, fold_seed)
        n_epochs = epochs_for(len(split.train), batch_size, epochs, steps)
        fold_epochs.append(n_epochs)
        config = TrainConfig(
            model=model, augmentation=augmentation, preprocessing=preprocessing, batch_size=batch_size,
            max_epochs=n_epochs, patience=n_epochs, time_budget_s=NO_TIME_BUDGET_S, seed=fold_seed,
            num_threads=num_threads, select_best_epoch=select_best_epoch,
        )
        trained = train_detector(dataset, split, config, progress=_epoch_reporter(progress, fold, n_epochs, folds))
        with intra_op_threads(num_threads):
            scores[test] = score_images(trained.detector, images[test])
        fold_models.append(trained.detector)
        training_rows.append(tuple(int(i) for i in np.sort(np.concatenate([split.train, split.validation]))))
        per_fold.append({
            "fold": fold, "seed": fold_seed, "n_train": len(split.train), "n_validation": len(split.validation),
            "n_test": len(test), "epochs": n_epochs, "best_epoch": trained.best_epoch, "stopped_reason": trained.stopped_reason,
            "wall_s": trained.wall_s, "temperature": trained.detector.temperature,
            "validation_auc": trained.validation.get("auc"),
            "test_auc": float(roc_auc_score(labels[test], scores[test])) if len(np.unique(labels[test])) == 2 else None,
        })

    auc, ci = auc_interval(labels, scores, confidence)
    grouped = groups is not None
    detectability = Detectability(
        auc=auc, ci=ci, null_low=None, null_high=None, p_value=None, n_permutations=0,
        distinguishable=bool(ci.low > 0.5), n_real=len(real), n_synthetic=len(synthetic), folds=folds,
        grouped=grouped, seed=recorded,
        method=(f"cross-fitted ViT detector (timm, {model.depth} blocks x {model.embed_dim} dims, {model.input} input, "
                f"{_epochs_text(fold_epochs, steps)}, "
                f"{'best epoch and ' if select_best_epoch else 'last epoch, '}temperature on an inner validation "
                f"subset; {preprocessing.name}); {folds}-fold, "
                f"stratified{' and grouped' if grouped else ''}"),
        seconds=time.perf_counter() - start, fold_of=tuple(int(f) for f in fold_of),
        scores=tuple(float(s) for s in scores),
    )
    training = {
        "model": model, "preprocessing": preprocessing.name, "augmentation": augmentation, "batch_size": batch_size,
        "num_threads": num_threads, "validation_fraction": 1.0 / VALIDATION_PARTS,
    }
    return CrossFitResult(detectability, fold_models, training_rows, max(fold_epochs), per_fold, training)


def epochs_for(n_train: int, batch_size: int, max_epochs: int, steps: int | None) -> int:
    """Epochs of one fold: `max_epochs`, or with `steps` as many as reach that many optimiser steps (at most
    `max_epochs`)."""
    if steps is None:
        return max_epochs
    per_epoch = max(1, math.ceil(n_train / batch_size))
    return max(1, min(max_epochs, math.ceil(steps / per_epoch)))


def _epochs_text(fold_epochs: list[int], steps: int | None) -> str:
    span = f"{min(fold_epochs)}" if min(fold_epochs) == max(fold_epochs) else f"{min(fold_epochs)}-{max(fold_epochs)}"
    return f"{span} epochs per fold" + (f" (~{steps} steps)" if steps else "")


def score_with_fold_models(result: CrossFitResult, images: Images, *, num_threads: int | None = 1) -> np.ndarray:
    """Mean calibrated P(synthetic) over the fold models, for images none of them trained on (e.g. another set)."""
    with intra_op_threads(num_threads):
        return np.mean([score_images(detector, images) for detector in result.fold_models], axis=0)


def _checked_images(images: np.ndarray, name: str, model: DetectorConfig, preprocessing: Preprocessing) -> np.ndarray:
    size = preprocessing.size
    if model.img_size != size:
        raise ValueError(f"the model takes {model.img_size} px input, the preprocessing makes {size} px")
    if preprocessing.native:
        if not (isinstance(images, np.ndarray) and images.dtype == object) or any(
                w.dtype != np.uint8 or w.ndim != 3 or w.shape[0] != w.shape[1] or w.shape[0] < size for w in images):
            raise ValueError(f"{name} images must be native windows (data.standardise_images with a native "
                             f"preprocessing): an object array of uint8 squares of at least {size} px")
        return images
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (size, size, 3):
        raise ValueError(f"{name} images must be standardised uint8 N x {size} x {size} x 3, got "
                         f"{images.dtype} {images.shape}")
    return images


def _inner_split(rows: np.ndarray, labels: np.ndarray, groups: list[str] | None, test: np.ndarray,
                 seed: int) -> DataSplit:
    """Train / inner validation out of one fold's training rows only (stratified, grouped like the folds)."""
    inner_groups = None if groups is None else [groups[i] for i in rows]
    try:
        part = crossfit_folds(labels[rows], inner_groups, VALIDATION_PARTS, seed)
    except InsufficientSamplesError as error:
        raise InsufficientSamplesError(f"too few images to carve an inner validation subset out of a fold's "
                                       f"training rows ({error})") from error
    return DataSplit(train=rows[part != 0], validation=rows[part == 0], test=test)


def _epoch_reporter(progress: Callable[[int, int], None] | None, fold: int, epochs: int,
                    folds: int) -> Callable[[TrainingProgress], None] | None:
    if progress is None:
        return None
    return lambda record: progress(fold * epochs + record.epoch, folds * epochs)
