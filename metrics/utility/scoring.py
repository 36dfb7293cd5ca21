"""The classifier's figures on real test images, for many weightings of the images at once.

Every figure is a function of (true class, predicted class probabilities, a weight per image). A weight of one on
every image gives the figure itself; a weight of zero leaves an image out (one cross-validation fold is the others
at zero); a row of bootstrap counts gives the figure on a resample. Passing a (B, N) matrix of weights computes B
figures in one vectorised pass, which is what makes a paired bootstrap over thousands of resamples cost seconds.

- `weighted_auroc`: the Mann-Whitney AUC (ties count half) of a score, positives vs negatives; equals sklearn's
  `roc_auc_score(..., sample_weight=w)` (tested);
- `macro_auroc`: binary AUROC for two classes, the unweighted mean of one-vs-rest AUROCs for more (sklearn's
  `multi_class="ovr", average="macro"`);
- `balanced_accuracy`: mean per-class recall of the most probable class (sklearn's `balanced_accuracy_score`);
- `sensitivity_at_specificity`: the largest true-positive rate among the operating points whose false-positive
  rate is at most 1 - specificity (on sklearn's `roc_curve` points), the "high-risk sensitivity" of a screening
  classifier when the positives are the malignant classes.
"""
from __future__ import annotations

import numpy as np

METRICS = ("auroc", "balanced_accuracy", "high_risk_sensitivity")
METRIC_TITLES = {"auroc": "AUROC", "balanced_accuracy": "balanced accuracy",
                 "high_risk_sensitivity": "high-risk sensitivity at 90 % specificity"}
SPECIFICITY = 0.9


def _as_weights(weights: np.ndarray | None, n: int) -> np.ndarray:
    if weights is None:
        return np.ones((1, n), dtype=np.float64)
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if weights.shape[1] != n:
        raise ValueError(f"weights have {weights.shape[1]} columns for {n} images")
    return weights


def _tie_blocks(scores: np.ndarray, descending: bool) -> tuple[np.ndarray, np.ndarray]:
    """(order, block starts): the images sorted by score, and where each run of equal scores starts."""
    order = np.argsort(-scores if descending else scores, kind="stable")
    ordered = scores[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    return order, starts


def weighted_auroc(positive: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """AUROC of `scores` for `positive` (bool) images under each row of `weights`; NaN where a class has no weight."""
    positive = np.asarray(positive, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    weights = _as_weights(weights, len(scores))
    order, starts = _tie_blocks(scores, descending=False)
    w = weights[:, order]
    pos = np.add.reduceat(w * positive[order], starts, axis=1)
    neg = np.add.reduceat(w * ~positive[order], starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg  # negative weight strictly below each block
    total_pos, total_neg = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (pos * (below + 0.5 * neg)).sum(axis=1) / (total_pos * total_neg)
    auc[(total_pos <= 0) | (total_neg <= 0)] = np.nan
    return auc


def macro_auroc(labels: np.ndarray, probabilities: np.ndarray, weights: np.ndarray | None = None,
                positive_class: int = 1) -> np.ndarray:
    """Binary AUROC of `positive_class` for two classes; macro one-vs-rest AUROC for more."""
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape[1] == 2:
        return weighted_auroc(labels == positive_class, probabilities[:, positive_class], weights)
    per_class = [weighted_auroc(labels == c, probabilities[:, c], weights) for c in range(probabilities.shape[1])]
    return np.mean(per_class, axis=0)


def balanced_accuracy(labels: np.ndarray, probabilities: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    labels = np.asarray(labels)
    predicted = np.argmax(probabilities, axis=1)
    weights = _as_weights(weights, len(labels))
    recalls = []
    for c in range(probabilities.shape[1]):
        members = labels == c
        with np.errstate(invalid="ignore", divide="ignore"):
            recalls.append(weights[:, members & (predicted == c)].sum(axis=1) / weights[:, members].sum(axis=1))
    return np.mean(recalls, axis=0)


def sensitivity_at_specificity(positive: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None,
                               specificity: float = SPECIFICITY) -> np.ndarray:
    """Largest weighted TPR with FPR <= 1 - specificity, thresholds at the observed scores (score >= t is positive)."""
    positive = np.asarray(positive, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    weights = _as_weights(weights, len(scores))
    order, starts = _tie_blocks(scores, descending=True)
    w = weights[:, order]
    tp = np.cumsum(np.add.reduceat(w * positive[order], starts, axis=1), axis=1)
    fp = np.cumsum(np.add.reduceat(w * ~positive[order], starts, axis=1), axis=1)
    total_pos, total_neg = tp[:, -1], fp[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = tp / total_pos[:, None]
        allowed = fp <= (1.0 - specificity) * total_neg[:, None] + 1e-12
    # TPR and FPR only grow along the sorted thresholds: the best allowed point is the last allowed one.
    last = allowed.sum(axis=1) - 1
    result = np.where(last >= 0, tpr[np.arange(len(tpr)), np.maximum(last, 0)], 0.0)
    result[(total_pos <= 0) | (total_neg <= 0)] = np.nan
    return result


def classifier_metrics(labels: np.ndarray, probabilities: np.ndarray, high_risk: np.ndarray,
                       weights: np.ndarray | None = None, positive_class: int = 1) -> dict[str, np.ndarray]:
    """Every figure of METRICS under each row of `weights`. `high_risk` is a bool mask over the classes: the
    high-risk score is the summed probability of those classes, the positives the images of those classes."""
    labels = np.asarray(labels)
    high_risk = np.asarray(high_risk, dtype=bool)
    figures = {"auroc": macro_auroc(labels, probabilities, weights, positive_class),
               "balanced_accuracy": balanced_accuracy(labels, probabilities, weights)}
    if high_risk.any() and not high_risk.all():
        figures["high_risk_sensitivity"] = sensitivity_at_specificity(
            high_risk[labels], probabilities[:, high_risk].sum(axis=1), weights)
    else:
        figures["high_risk_sensitivity"] = np.full(_as_weights(weights, len(labels)).shape[0], np.nan)
    return figures
