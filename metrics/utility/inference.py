"""Confidence intervals for figures measured by repeated cross-validation, where repeats share their images.

The k folds x R repeats of a repeated cross-validation are not k·R independent measurements: every repeat tests
the same real images and trains on overlapping sets, so the naive standard error of the fold-to-fold spread is far
too small (Nadeau & Bengio 2003; Bouckaert & Frank 2004). Two honest intervals are computed for every figure and
every paired difference:

- **paired cluster bootstrap over real test images** (the one the verdict uses): each repeat scores every real
  image exactly once (out of fold), so a repeat's pooled figure is a function of the real images; resampling whole
  lesion/patient groups with replacement — the same resample for every condition and every repeat, so differences
  stay paired — and averaging over the repeats gives the sampling distribution of the figure for patients like
  these, with the training sets this data allows. Percentile interval.
- **Nadeau-Bengio corrected resampled t** over the k·R per-fold figures: variance (1/J + n_test/n_train)·s², t with
  J - 1 degrees of freedom. It also charges the variability of which images the classifier happened to train on,
  and is known to be conservative; the report shows it beside the bootstrap as a cross-check.

`paired_delong` is DeLong's test of two correlated AUCs on the same images (DeLong, DeLong & Clarke-Pearson
1988), a third cross-check on one repeat's pooled scores; validated against reader_study.mrmc's DeLong covariance
in tests/metrics/test_utility_inference.py.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, rankdata
from scipy.stats import t as student_t

from metrics.results import ConfidenceInterval

BOOTSTRAP_METHOD = ("percentile interval of a paired cluster bootstrap over the real test images (whole "
                    "lesion/patient groups resampled, the same resamples for every condition, figures averaged "
                    "over the repeats)")


def cluster_bootstrap_weights(groups: Sequence, n_resamples: int, rng: np.random.Generator,
                              labels: np.ndarray | None = None) -> np.ndarray:
    """(n_resamples, N) multiplicities: each row draws as many groups as there are, with replacement, and gives
    every image its group's count. With `labels`, a row whose resample lacks a class is drawn again (so that every
    figure is defined); at most 50 tries per row."""
    keys, group_of = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
    n_groups = len(keys)
    rows = np.empty((n_resamples, len(group_of)), dtype=np.float64)
    classes = None if labels is None else np.unique(labels)
    for b in range(n_resamples):
        for _ in range(50):
            counts = np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)
            row = counts[group_of].astype(np.float64)
            if classes is None or all(row[labels == c].sum() > 0 for c in classes):
                break
        rows[b] = row
    return rows


def bootstrap_interval(replicates: np.ndarray, level: float = 0.95) -> ConfidenceInterval:
    finite = np.asarray(replicates, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return ConfidenceInterval(math.nan, math.nan, level, BOOTSTRAP_METHOD, 0)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return ConfidenceInterval(float(low), float(high), level, BOOTSTRAP_METHOD, int(finite.size))


def nadeau_bengio_interval(per_fold: np.ndarray, test_train_ratio: float, level: float = 0.95) -> ConfidenceInterval:
    """Corrected resampled t interval of the mean of J = k·R per-fold values (NaN folds dropped)."""
    values = np.asarray(per_fold, dtype=np.float64)
    values = values[np.isfinite(values)]
    n = len(values)
    method = f"Nadeau-Bengio corrected resampled t ({n} folds, n_test/n_train = {test_train_ratio:.3f})"
    if n < 2:
        return ConfidenceInterval(math.nan, math.nan, level, method, n)
    mean = float(values.mean())
    se = math.sqrt((1.0 / n + test_train_ratio) * float(values.var(ddof=1)))
    half = float(student_t.ppf(0.5 + level / 2.0, df=n - 1)) * se
    return ConfidenceInterval(mean - half, mean + half, level, method, n)


@dataclass(frozen=True)
class PairedDeLong:
    difference: float  # AUC(b) - AUC(a)
    ci: ConfidenceInterval
    p_value: float  # two-sided, difference = 0
    auc_a: float
    auc_b: float


def _structural_components(positive: np.ndarray, scores: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    pos, neg = scores[positive], scores[~positive]
    m, n = len(pos), len(neg)
    all_ranks = rankdata(np.concatenate([pos, neg]))
    v10 = (all_ranks[:m] - rankdata(pos)) / n
    v01 = 1.0 - (all_ranks[m:] - rankdata(neg)) / m
    return float(v10.mean()), v10, v01


def paired_delong(positive: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray,
                  level: float = 0.95) -> PairedDeLong:
    """DeLong's interval and test for AUC(b) - AUC(a), both scored on the same images."""
    positive = np.asarray(positive, dtype=bool)
    m, n = int(positive.sum()), int((~positive).sum())
    if m < 2 or n < 2:
        raise ValueError("DeLong needs at least two images of each class")
    auc_a, v10_a, v01_a = _structural_components(positive, np.asarray(scores_a, dtype=np.float64))
    auc_b, v10_b, v01_b = _structural_components(positive, np.asarray(scores_b, dtype=np.float64))
    s10, s01 = np.cov(np.vstack([v10_a, v10_b])), np.cov(np.vstack([v01_a, v01_b]))
    covariance = s10 / m + s01 / n
    variance = float(covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1])
    difference = auc_b - auc_a
    se = math.sqrt(max(variance, 0.0))
    half = float(norm.ppf(0.5 + level / 2.0)) * se
    p_value = float(2 * norm.sf(abs(difference) / se)) if se > 0 else (1.0 if difference == 0 else 0.0)
    return PairedDeLong(difference, ConfidenceInterval(difference - half, difference + half, level,
                                                       "DeLong (1988) paired, one repeat's pooled out-of-fold scores"),
                        p_value, auc_a, auc_b)
