"""Detectability as a classifier two-sample test: can a classifier tell the audited images from real ones?

If a generated set were drawn from the same distribution as the real reference, no classifier could separate them:
its out-of-sample AUC would be 0.5 up to noise. So the audit trains classifiers on *this* generated set against the
reference and scores every image only with a model that never trained on it (cross-fitting: k folds, each fold
scored by the model fitted on the other k - 1). The AUC of those out-of-fold scores, with its CI over images, is the
detectability; a label-permutation null on the same folds says what "no difference" looks like at this sample size
(Lopez-Paz & Oquab 2017, "Revisiting classifier two-sample tests"; Kim et al. 2021 on cross-fitting).

Two classifiers use it:
- `probe_detectability` (here): standardised features -> logistic regression, seconds on cached features;
- `deepfake_detector.crossfit.crossfit_detector`: the ViT detector trained per fold on the pixels.

Both share `crossfit_folds` (stratified by class, grouped by patient/lesion when groups are known, so two
photographs of one lesion never sit on both sides of a fold) and `auc_interval` (DeLong's variance, validated in
tests/metrics/test_detectability.py against reader_study.mrmc's DeLong structural components).
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.preprocessing import StandardScaler

from metrics.results import (
    ConfidenceInterval,
    InsufficientSamplesError,
    JsonResult,
    Seed,
    limited_blas_threads,
    resolve_seed,
)

MIN_PER_CLASS = 10
PROBE_COMPONENTS = 64
PROBE_METHOD = (f"cross-fitted logistic regression (L2, C = 1/sqrt(k)) on the first k <= {PROBE_COMPONENTS} principal "
                "components of the standardised extractor features (scaler and components fitted on each fold's "
                "training rows, without labels)")


def crossfit_folds(labels: np.ndarray, groups: Sequence | None = None, folds: int = 5, seed: Seed = 0) -> np.ndarray:
    """Fold number (0..folds-1) of every sample: stratified by class, and grouped when `groups` is given (no group
    is split across folds). Deterministic for a seed. Raises InsufficientSamplesError when a class is too small."""
    labels = np.asarray(labels).astype(np.int64)
    counts = np.bincount(labels, minlength=2)
    if labels.ndim != 1 or set(np.unique(labels)) - {0, 1} or counts.min() < max(MIN_PER_CLASS, folds):
        raise InsufficientSamplesError(
            f"cross-fitting needs at least {max(MIN_PER_CLASS, folds)} images of each class, got {counts[0]} real and "
            f"{counts[1]} synthetic")
    recorded, _ = resolve_seed(seed)
    fold_of = np.full(len(labels), -1, dtype=np.int64)
    if groups is not None:
        keys = np.asarray([str(g) for g in groups])
        if len(keys) != len(labels):
            raise ValueError("groups must have one entry per sample")
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=recorded % 2**32)
        splits = splitter.split(np.zeros(len(labels)), labels, keys)
    else:
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=recorded % 2**32)
        splits = splitter.split(np.zeros(len(labels)), labels)
    for fold, (_, test) in enumerate(splits):
        fold_of[test] = fold
    for fold in range(folds):  # every training side must hold both classes
        if len(np.unique(labels[fold_of != fold])) < 2 or not np.any(fold_of == fold):
            raise InsufficientSamplesError(f"fold {fold} leaves a class out of training: too few groups")
    return fold_of


def pooled_groups(real_groups: Sequence | None, synthetic_groups: Sequence | None, n_real: int,
                  n_synthetic: int) -> list[str] | None:
    """One group key per pooled row (real rows first): the class as a prefix, and a group of its own for an image
    without one. None when neither class has groups. The probe and the ViT cross-fit share it, so that equal inputs
    and seed give them equal folds."""
    if real_groups is None and synthetic_groups is None:
        return None
    for given, n, name in ((real_groups, n_real, "real"), (synthetic_groups, n_synthetic, "synthetic")):
        if given is not None and len(given) != n:
            raise ValueError(f"{name}_groups has {len(given)} entries for {n} images")
    return [f"r:{g}" if g is not None else f"r#{i}" for i, g in enumerate(real_groups or [None] * n_real)] + \
           [f"s:{g}" if g is not None else f"s#{i}" for i, g in enumerate(synthetic_groups or [None] * n_synthetic)]


def auc_interval(labels: np.ndarray, scores: np.ndarray, confidence: float = 0.95) -> tuple[float, ConfidenceInterval]:
    """Empirical AUC (ties count half) and its DeLong (1988) Wald interval, clipped to [0, 1]."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    positive, negative = scores[labels], scores[~labels]
    m, n = len(positive), len(negative)
    if m < 2 or n < 2:
        raise InsufficientSamplesError("an AUC interval needs at least two images of each class")
    # Structural components: V10 per positive, V01 per negative, via mid-ranks (O((m + n) log(m + n))).
    from scipy.stats import rankdata

    all_ranks = rankdata(np.concatenate([positive, negative]))
    pos_ranks, neg_ranks = rankdata(positive), rankdata(negative)
    v10 = (all_ranks[:m] - pos_ranks) / n
    v01 = 1.0 - (all_ranks[m:] - neg_ranks) / m
    auc = float(v10.mean())
    variance = float(np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n)
    half = float(norm.ppf(0.5 + confidence / 2.0)) * math.sqrt(max(variance, 0.0))
    return auc, ConfidenceInterval(max(0.0, auc - half), min(1.0, auc + half), confidence, "DeLong (1988) Wald interval")


@dataclass(frozen=True)
class Detectability(JsonResult):
    """Out-of-fold AUC of a classifier of synthetic (1) vs real (0), with its CI and a permutation null."""

    auc: float
    ci: ConfidenceInterval
    null_low: float | None  # 2.5th / 97.5th percentile of the AUC with permuted labels on the same folds
    null_high: float | None
    p_value: float | None  # one-sided, (1 + #null >= auc) / (1 + permutations)
    n_permutations: int
    distinguishable: bool  # the CI lies above 0.5
    n_real: int
    n_synthetic: int
    folds: int
    grouped: bool
    seed: int
    method: str
    seconds: float
    fold_of: tuple[int, ...]  # the fold of each input row (real rows first, then synthetic)
    scores: tuple[float, ...]  # each row's out-of-fold score


def _fold_designs(features: np.ndarray, fold_of: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per fold: (training rows, test rows, their design matrices). Scaling and the principal components are fitted on
    the training rows only and use no labels, so they are shared by the observed labels and every permutation."""
    designs = []
    for fold in np.unique(fold_of):
        train, test = np.flatnonzero(fold_of != fold), np.flatnonzero(fold_of == fold)
        scaler = StandardScaler().fit(features[train])
        components = min(PROBE_COMPONENTS, len(train) - 1, features.shape[1])
        pca = PCA(n_components=components, svd_solver="randomized", random_state=0).fit(scaler.transform(features[train]))
        designs.append((train, test, pca.transform(scaler.transform(features[train])),
                        pca.transform(scaler.transform(features[test]))))
    return designs


def _probe_scores(designs: list, labels: np.ndarray, seed: int) -> np.ndarray:
    scores = np.empty(len(labels), dtype=np.float64)
    for train, test, x_train, x_test in designs:
        model = LogisticRegression(C=1.0 / math.sqrt(x_train.shape[1]), solver="newton-cholesky", max_iter=200)
        model.fit(x_train, labels[train])
        scores[test] = model.decision_function(x_test)
    return scores


@limited_blas_threads
def probe_detectability(
    real: np.ndarray,
    synthetic: np.ndarray,
    *,
    real_groups: Sequence | None = None,
    synthetic_groups: Sequence | None = None,
    folds: int = 5,
    n_permutations: int = 100,
    seed: Seed = 0,
    confidence: float = 0.95,
) -> Detectability:
    """Cross-fitted logistic-regression probe on feature vectors (N x D float arrays, real and synthetic)."""
    start = time.perf_counter()
    real, synthetic = np.asarray(real, dtype=np.float64), np.asarray(synthetic, dtype=np.float64)
    if real.ndim != 2 or synthetic.ndim != 2 or real.shape[1] != synthetic.shape[1]:
        raise ValueError("real and synthetic must be N x D feature arrays of the same width")
    if not (np.isfinite(real).all() and np.isfinite(synthetic).all()):
        raise ValueError("features contain NaN or infinite values")
    recorded, rng = resolve_seed(seed)
    features = np.vstack([real, synthetic])
    labels = np.concatenate([np.zeros(len(real), np.int64), np.ones(len(synthetic), np.int64)])
    groups = pooled_groups(real_groups, synthetic_groups, len(real), len(synthetic))
    fold_of = crossfit_folds(labels, groups, folds, recorded)
    designs = _fold_designs(features, fold_of)
    scores = _probe_scores(designs, labels, recorded)
    auc, ci = auc_interval(labels, scores, confidence)
    null = []
    for _ in range(n_permutations):
        permuted = rng.permutation(labels)
        if any(len(np.unique(permuted[fold_of != f])) < 2 for f in range(folds)):
            continue
        null.append(roc_auc_score(permuted, _probe_scores(designs, permuted, recorded)))
    null_arr = np.asarray(null)
    return Detectability(
        auc=auc, ci=ci,
        null_low=float(np.percentile(null_arr, 2.5)) if len(null_arr) else None,
        null_high=float(np.percentile(null_arr, 97.5)) if len(null_arr) else None,
        p_value=float((1 + np.sum(null_arr >= auc)) / (1 + len(null_arr))) if len(null_arr) else None,
        n_permutations=len(null_arr), distinguishable=bool(ci.low > 0.5),
        n_real=len(real), n_synthetic=len(synthetic), folds=folds, grouped=groups is not None, seed=recorded,
        method=f"{PROBE_METHOD}; {folds}-fold, stratified{' and grouped' if groups is not None else ''}",
        seconds=time.perf_counter() - start, fold_of=tuple(int(f) for f in fold_of),
        scores=tuple(float(s) for s in scores),
    )
