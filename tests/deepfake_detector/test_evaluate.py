"""Evaluation numbers equal scikit-learn's, intervals behave, groups and robustness are reported."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score

from deepfake_detector import evaluate_detector
from deepfake_detector.calibration import apply_temperature, expected_calibration_error
from deepfake_detector.evaluate import bootstrap_metric, compute_binary_metrics, compute_group_metrics
from deepfake_detector.evaluate import roc_auc as roc_auc_metric


def test_metrics_equal_sklearn_on_known_inputs():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    logits = np.array([-3.0, -1.0, 0.5, -2.0, 2.0, -0.5, 1.0, 4.0])
    metrics = compute_binary_metrics(labels, logits, temperature=2.0, n_bootstrap=200, seed=0)
    calibrated = apply_temperature(logits, 2.0)
    assert metrics.roc_auc.value == pytest.approx(roc_auc_score(labels, calibrated)) == pytest.approx(15 / 16)
    assert metrics.average_precision.value == pytest.approx(average_precision_score(labels, calibrated))
    assert metrics.accuracy_at_0_5.value == pytest.approx(accuracy_score(labels, calibrated >= 0.5)) == 0.75
    assert metrics.ece_before_scaling.value == pytest.approx(expected_calibration_error(apply_temperature(logits), labels))
    assert metrics.ece_after_scaling.value == pytest.approx(expected_calibration_error(calibrated, labels))
    for metric in (metrics.roc_auc, metrics.average_precision, metrics.accuracy_at_0_5, metrics.ece_after_scaling):
        assert metric.ci_low <= metric.value <= metric.ci_high
    assert (metrics.n, metrics.n_real, metrics.n_synthetic) == (8, 4, 4)


def test_bootstrap_interval_narrows_with_more_data_and_is_reproducible():
    rng = np.random.default_rng(0)

    def width(n: int) -> float:
        labels = np.r_[np.zeros(n), np.ones(n)].astype(int)
        logits = rng.normal(0, 1, 2 * n) + labels
        auc = bootstrap_metric(roc_auc_metric, labels, logits, n_bootstrap=200, seed=1)
        return auc.ci_high - auc.ci_low

    assert width(400) < width(25)
    labels, logits = np.r_[np.zeros(20), np.ones(20)].astype(int), np.linspace(-1, 1, 40)
    assert bootstrap_metric(roc_auc_metric, labels, logits, 100, seed=3) == bootstrap_metric(
        roc_auc_metric, labels, logits, 100, seed=3
    )


def test_group_breakdown_counts_and_flags():
    labels = np.array([0, 0, 1, 1, 0, 1])
    probabilities = np.array([0.1, 0.6, 0.9, 0.8, 0.3, 0.2])
    groups = compute_group_metrics(
        labels, probabilities, ["II", "II", "II", "II", "V", None], [False, False, True, True, False, True], 100
    )
    by_name = {g.group: g for g in groups}
    assert set(by_name) == {"II", "V", "unknown"}
    two = by_name["II"]
    assert (two.n, two.n_real, two.n_synthetic, two.n_estimated, two.estimated) == (4, 2, 2, 2, True)
    assert two.roc_auc.value == 1.0 and two.accuracy_at_0_5.value == 0.75
    assert two.mean_probability_real == pytest.approx(0.35)
    assert by_name["V"].roc_auc is None and by_name["V"].estimated is False  # one class only: no AUC
    assert by_name["unknown"].mean_probability_real is None


@pytest.mark.slow
def test_evaluate_detector_on_the_toy_test_split(toy_training, toy_dataset, toy_split):
    test = toy_dataset.subset(toy_split.test)
    fitz = np.where(np.arange(len(test)) % 2 == 0, "I-II", "III-IV")
    evaluation = evaluate_detector(
        toy_training.detector, test.images, test.labels, group_labels=fitz, n_bootstrap=100
    )
    assert evaluation.overall.roc_auc.value > 0.95
    assert set(evaluation.robustness_auc) == {"jpeg_q75", "gaussian_blur_sigma1", "resize_0.5x_down_up"}
    # The toy artefact is a Nyquist-frequency pattern: a 2x down-up resize must erase most of it.
    assert evaluation.robustness_auc["resize_0.5x_down_up"].value < evaluation.overall.roc_auc.value
    assert sum(g.n for g in evaluation.groups) == len(test)
    assert evaluation.to_dict()["overall"]["roc_auc"]["value"] == evaluation.overall.roc_auc.value
