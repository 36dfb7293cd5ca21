"""Fitness for purpose: does a synthetic set help a classifier on real images, and for whom? (no Django)

Entry point: `evaluate_utility(real_x, real_labels, real_groups, synthetic_x, synthetic_labels, subgroups=…)`
(metrics.utility.protocol) returns a `UtilityResult`: TRTR, TSTR, the augmentation curve with its gains, the
held-out-real and swapped-label controls, label consistency (TRTS) and per-subgroup figures with fairness gaps.

- protocol.py: the conditions; results.py: the result dataclasses; splits.py: repeated grouped folds, real test
  images only; subgroups.py: per-subgroup figures, fairness gaps, label consistency;
- classifiers.py: the linear probe (default); finetune.py: a fine-tuned EfficientNet-Lite0 stage;
- scoring.py: AUROC, balanced accuracy, high-risk sensitivity, vectorised over bootstrap weights;
- inference.py: paired cluster bootstrap, Nadeau-Bengio corrected t, paired DeLong.
"""
from metrics.utility.classifiers import LinearProbe
from metrics.utility.protocol import (
    CLASS_MIXES,
    CURVE_RATIOS,
    DEFAULT_HIGH_RISK,
    UtilityDesign,
    UtilityResult,
    evaluate_utility,
)

__all__ = ["CLASS_MIXES", "CURVE_RATIOS", "DEFAULT_HIGH_RISK", "LinearProbe", "UtilityDesign", "UtilityResult",
           "evaluate_utility"]
