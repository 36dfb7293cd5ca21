"""The utility figures against sklearn on the same images and weights (bootstrap counts, zeros, ties)."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, roc_auc_score, roc_curve

from metrics.utility.scoring import (
    balanced_accuracy,
    classifier_metrics,
    macro_auroc,
    sensitivity_at_specificity,
    weighted_auroc,
)


@pytest.fixture
def binary():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.normal(labels * 0.8, 1.0), 1)  # rounded: many ties
    weights = rng.integers(0, 4, (6, 300)).astype(float)  # bootstrap-like counts, zeros included
    return labels, scores, weights


def test_weighted_auroc_equals_sklearn_for_every_weight_row(binary):
    labels, scores, weights = binary
    ours = weighted_auroc(labels == 1, scores, weights)
    for row, value in zip(weights, ours):
        assert value == pytest.approx(roc_auc_score(labels, scores, sample_weight=row), abs=1e-12)
    assert weighted_auroc(labels == 1, scores)[0] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_auroc_is_nan_when_a_class_has_no_weight(binary):
    labels, scores, _ = binary
    assert np.isnan(weighted_auroc(labels == 1, scores, (labels == 1).astype(float)))[0]


def test_macro_auroc_equals_sklearn_one_vs_rest():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 4, 400)
    logits = rng.normal(size=(400, 4)) + np.eye(4)[labels] * 1.2
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    weights = rng.integers(0, 3, (4, 400)).astype(float)
    ours = macro_auroc(labels, probabilities, weights)
    for row, value in zip(weights, ours):
        expected = roc_auc_score(labels, probabilities, multi_class="ovr", average="macro", sample_weight=row)
        assert value == pytest.approx(expected, abs=1e-12)


def test_balanced_accuracy_equals_sklearn():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 3, 250)
    probabilities = rng.dirichlet(np.ones(3), 250) + np.eye(3)[labels] * 0.3
    weights = rng.integers(0, 3, (5, 250)).astype(float)
    ours = balanced_accuracy(labels, probabilities, weights)
    for row, value in zip(weights, ours):
        keep = row > 0
        expected = balanced_accuracy_score(labels[keep], probabilities[keep].argmax(1), sample_weight=row[keep])
        assert value == pytest.approx(expected, abs=1e-12)


def test_sensitivity_at_specificity_is_the_best_roc_point_within_the_false_positive_budget(binary):
    labels, scores, weights = binary
    for row, value in zip(weights, sensitivity_at_specificity(labels == 1, scores, weights, specificity=0.9)):
        fpr, tpr, _ = roc_curve(labels, scores, sample_weight=row, drop_intermediate=False)
        assert value == pytest.approx(tpr[fpr <= 0.1 + 1e-12].max(), abs=1e-12)


def test_high_risk_figure_uses_the_summed_probability_of_the_high_risk_classes():
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 3, 200)
    probabilities = rng.dirichlet(np.ones(3), 200)
    high_risk = np.array([True, False, True])
    figures = classifier_metrics(labels, probabilities, high_risk)
    positive = np.isin(labels, [0, 2])
    score = probabilities[:, 0] + probabilities[:, 2]
    fpr, tpr, _ = roc_curve(positive, score, drop_intermediate=False)
    assert figures["high_risk_sensitivity"][0] == pytest.approx(tpr[fpr <= 0.1 + 1e-12].max())
    assert np.isnan(classifier_metrics(labels, probabilities, np.zeros(3, bool))["high_risk_sensitivity"][0])
