"""Evaluation of a detector on a held-out split: discrimination, calibration, groups and robustness.

Point values come from scikit-learn; intervals are 95 % percentile bootstraps that resample real and synthetic
images separately (so each resample keeps the class sizes and AUC stays defined).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score, roc_curve

from deepfake_detector.calibration import apply_temperature, expected_calibration_error
from deepfake_detector.data import encode_for_model, standardise_images
from deepfake_detector.model import Detector
from deepfake_detector.perturbations import ROBUSTNESS_PERTURBATIONS, apply_to_batch
from deepfake_detector.scoring import logits_of_encoded

Metric = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class MetricWithCI:
    value: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class BinaryMetrics:
    n: int
    n_real: int
    n_synthetic: int
    roc_auc: MetricWithCI
    average_precision: MetricWithCI
    accuracy_at_0_5: MetricWithCI
    ece_before_scaling: MetricWithCI
    ece_after_scaling: MetricWithCI


@dataclass(frozen=True)
class GroupMetrics:
    group: str
    n: int
    n_real: int
    n_synthetic: int
    n_estimated: int
    estimated: bool  # True when any label in this group is an estimate (e.g. ITA phototype), not a recorded one
    mean_probability_real: float | None
    mean_probability_synthetic: float | None
    accuracy_at_0_5: MetricWithCI
    roc_auc: MetricWithCI | None  # None when the group holds only one class


@dataclass
class DetectorEvaluation:
    temperature: float
    overall: BinaryMetrics
    groups: list[GroupMetrics] = field(default_factory=list)
    robustness_auc: dict[str, MetricWithCI] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def accuracy_at_half(labels: np.ndarray, probabilities: np.ndarray) -> float:
    return float(accuracy_score(labels, (probabilities >= 0.5).astype(np.int64)))


def roc_points(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray, points: int = 200) -> dict:
    """The ROC curve thinned to at most `points` evenly spaced vertices (for charts): {"fpr": [...], "tpr": [...]}."""
    fpr, tpr, _ = roc_curve(labels, scores)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), points)).round().astype(int))
    return {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist()}


def roc_auc(labels: np.ndarray, probabilities: np.ndarray) -> float:
    return float(roc_auc_score(labels, probabilities))


def average_precision(labels: np.ndarray, probabilities: np.ndarray) -> float:
    return float(average_precision_score(labels, probabilities))


def bootstrap_metric(
    metric: Metric,
    labels: np.ndarray,
    probabilities: np.ndarray,
    n_bootstrap: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> MetricWithCI:
    """Point value of ``metric`` plus a class-stratified percentile bootstrap interval."""
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    value = metric(labels, probabilities)
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    replicates = np.empty(n_bootstrap, dtype=np.float64)
    for b in range(n_bootstrap):
        sample = np.concatenate([rng.choice(members, size=len(members), replace=True) for members in by_class])
        replicates[b] = metric(labels[sample], probabilities[sample])
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(replicates, [alpha, 1.0 - alpha])
    return MetricWithCI(value=float(value), ci_low=float(low), ci_high=float(high))


def compute_binary_metrics(
    labels: np.ndarray, logits: np.ndarray, temperature: float, n_bootstrap: int = 1000, seed: int = 0
) -> BinaryMetrics:
    labels = np.asarray(labels, dtype=np.int64)
    calibrated = apply_temperature(logits, temperature)
    uncalibrated = apply_temperature(logits, 1.0)

    def ece(y: np.ndarray, p: np.ndarray) -> float:
        return expected_calibration_error(p, y)

    def boot(metric: Metric, probabilities: np.ndarray) -> MetricWithCI:
        return bootstrap_metric(metric, labels, probabilities, n_bootstrap, seed)

    return BinaryMetrics(
        n=int(len(labels)),
        n_real=int((labels == 0).sum()),
        n_synthetic=int((labels == 1).sum()),
        roc_auc=boot(roc_auc, calibrated),
        average_precision=boot(average_precision, calibrated),
        accuracy_at_0_5=boot(accuracy_at_half, calibrated),
        ece_before_scaling=boot(ece, uncalibrated),
        ece_after_scaling=boot(ece, calibrated),
    )


def compute_group_metrics(
    labels: np.ndarray,
    probabilities: np.ndarray,
    group_labels: Sequence[str | None],
    group_estimated: Sequence[bool] | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> list[GroupMetrics]:
    """Per-group breakdown; images whose group label is None are reported as group "unknown"."""
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    names = np.array(["unknown" if g is None else str(g) for g in group_labels], dtype=object)
    estimated = np.zeros(len(labels), dtype=bool) if group_estimated is None else np.asarray(group_estimated, bool)
    if not (len(names) == len(labels) == len(estimated)):
        raise ValueError("one group label and one estimated flag per image")
    results = []
    for name in sorted(set(names.tolist())):
        members = names == name
        y, p = labels[members], probabilities[members]
        both_classes = len(np.unique(y)) == 2
        results.append(
            GroupMetrics(
                group=name,
                n=int(members.sum()),
                n_real=int((y == 0).sum()),
                n_synthetic=int((y == 1).sum()),
                n_estimated=int(estimated[members].sum()),
                estimated=bool(estimated[members].any()),
                mean_probability_real=float(p[y == 0].mean()) if (y == 0).any() else None,
                mean_probability_synthetic=float(p[y == 1].mean()) if (y == 1).any() else None,
                accuracy_at_0_5=bootstrap_metric(accuracy_at_half, y, p, n_bootstrap, seed),
                roc_auc=bootstrap_metric(roc_auc, y, p, n_bootstrap, seed) if both_classes else None,
            )
        )
    return results


def robustness_aucs(
    detector: Detector, images: np.ndarray, labels: np.ndarray, n_bootstrap: int = 1000, seed: int = 0
) -> dict[str, MetricWithCI]:
    """AUC after each named degradation, applied to the standardised image before the model's JPEG step."""
    standardised = standardise_images(images, detector.preprocessing)
    results = {}
    for name, perturbation in ROBUSTNESS_PERTURBATIONS.items():
        degraded = encode_for_model(apply_to_batch(standardised, perturbation), detector.preprocessing)
        logits = logits_of_encoded(detector, degraded)
        results[name] = bootstrap_metric(roc_auc, labels, logits, n_bootstrap, seed)
    return results


def evaluate_detector(
    detector: Detector,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    group_labels: Sequence[str | None] | None = None,
    group_estimated: Sequence[bool] | None = None,
    robustness: bool = True,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> DetectorEvaluation:
    """Evaluate on test images (uint8 NHWC, standardised or not) with 0/1 labels (1 = synthetic)."""
    labels = np.asarray(labels, dtype=np.int64)
    standardised = standardise_images(images, detector.preprocessing)
    logits = logits_of_encoded(detector, encode_for_model(standardised, detector.preprocessing))
    evaluation = DetectorEvaluation(
        temperature=detector.temperature,
        overall=compute_binary_metrics(labels, logits, detector.temperature, n_bootstrap, seed),
    )
    if group_labels is not None:
        probabilities = apply_temperature(logits, detector.temperature)
        evaluation.groups = compute_group_metrics(
            labels, probabilities, group_labels, group_estimated, n_bootstrap, seed
        )
    if robustness:
        evaluation.robustness_auc = robustness_aucs(detector, standardised, labels, n_bootstrap, seed)
    return evaluation
