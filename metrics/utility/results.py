"""The utility test's results as dataclasses (JSON through `to_dict`), and the helpers that turn out-of-fold
probabilities into figures with their intervals (shared by the whole-set figures and the subgroup figures)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from metrics.results import ConfidenceInterval, JsonResult
from metrics.utility.inference import BOOTSTRAP_METHOD, PairedDeLong, bootstrap_interval, nadeau_bengio_interval
from metrics.utility.scoring import METRICS, classifier_metrics


@dataclass(frozen=True)
class Estimate(JsonResult):
    value: float | None  # pooled out-of-fold figure of each repeat, averaged over the repeats
    ci: ConfidenceInterval  # paired cluster bootstrap over the real test images
    fold_mean: float | None  # mean of the k x R per-fold figures
    nb_ci: ConfidenceInterval | None  # Nadeau-Bengio corrected resampled t over those


@dataclass(frozen=True)
class Condition(JsonResult):
    key: str  # "real_only", "synthetic_only", "augmented@1", "real_added@0.5", "swapped@1", "all_real"
    kind: str
    ratio: float | None  # added images per real training image
    label: str
    n_real_train: float  # mean over folds
    n_added: float  # synthetic (or held-out real) training images, mean over folds
    figures: dict[str, Estimate]
    gain: dict[str, Estimate] | None  # minus real only, paired on the same test images


@dataclass(frozen=True)
class Decision(JsonResult):
    requested_ratio: float | str
    ratio: float
    note: str
    gain: float | None  # AUROC gain at the deciding ratio
    gain_ci: ConfidenceInterval
    negative_control_ratio: float | None
    negative_control_gain: float | None
    negative_control_ci: ConfidenceInterval | None
    positive_control_gain: float | None
    positive_control_ci: ConfidenceInterval | None
    delong: PairedDeLong | None  # cross-check on repeat 0's pooled scores (two classes only)


@dataclass(frozen=True)
class SubgroupFigures(JsonResult):
    field: str
    value: str
    n: int
    n_by_class: dict[str, int]
    underpowered: bool
    note: str
    real_only: dict[str, Estimate]
    augmented: dict[str, Estimate]
    gain: dict[str, Estimate]
    real_added_gain: dict[str, Estimate] | None


@dataclass(frozen=True)
class FairnessGap(JsonResult):
    field: str
    metric: str
    groups: list[str]  # the powered subgroups it is taken over
    real_only: Estimate | None  # best - worst subgroup, real only
    augmented: Estimate | None
    change: Estimate | None  # augmented gap - real-only gap (negative: the synthetic images narrow it)
    best_real_only: str | None
    worst_real_only: str | None
    note: str


@dataclass(frozen=True)
class UtilityResult(JsonResult):
    classifier: str
    classes: list[str]
    high_risk_classes: list[str]
    n_real: int
    n_synthetic: int  # usable: labelled with a class of the real images
    real_by_class: dict[str, int]
    synthetic_by_class: dict[str, int]
    synthetic_excluded: dict[str, int]  # labels the real images do not have
    design: dict
    seeds: list[int]  # one per repeat
    ratios: list[float]  # the augmentation curve's ratios this set allowed
    real_ratios: list[float]  # those the held-out real pool allowed
    conditions: list[Condition]
    decision: Decision
    label_consistency: dict
    subgroups: list[SubgroupFigures]
    fairness: list[FairnessGap]
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON with every interval as {"low", "high"}; how each kind of interval was made is said once, under
        "methods" (hundreds of intervals would otherwise repeat the same sentences)."""
        data = _compact(super().to_dict())
        data["methods"] = {"ci": BOOTSTRAP_METHOD, "nb_ci": "Nadeau-Bengio corrected resampled t over the k x R "
                           "per-fold figures (variance x (1/J + n_test/n_train))",
                           "delong": "DeLong (1988) paired AUC difference on the first repeat's pooled out-of-fold "
                                     "scores (two classes only)"}
        return data


def _compact(value):
    if isinstance(value, dict):
        if {"low", "high", "method"} <= set(value):
            return {"low": value["low"], "high": value["high"]}
        return {key: _compact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_compact(item) for item in value]
    return value


def figures_matrix(labels, probabilities, high_risk, weights, positive_class) -> dict[str, np.ndarray]:
    """Figures (metric -> (repeats, B)) of every repeat's pooled probabilities under each weight row."""
    per_repeat = [classifier_metrics(labels, probabilities[r], high_risk, weights, positive_class)
                  for r in range(probabilities.shape[0])]
    return {m: np.vstack([figures[m] for figures in per_repeat]) for m in METRICS}


def nanmean_quiet(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean over the defined values (a resample where a subgroup lacks a class gives NaN, left out); NaN if none."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)


def estimate(point: np.ndarray, boot: np.ndarray, folds: np.ndarray | None, ratio: float, level: float) -> Estimate:
    """point: (repeats,), boot: (repeats, B), folds: (k·R,) or None."""
    value = float(np.nanmean(point)) if np.isfinite(point).any() else None
    replicates = nanmean_quiet(boot, axis=0)
    fold_mean = float(np.nanmean(folds)) if folds is not None and np.isfinite(folds).any() else None
    nb = nadeau_bengio_interval(folds, ratio, level) if folds is not None else None
    return Estimate(value, bootstrap_interval(replicates, level), fold_mean, nb)
