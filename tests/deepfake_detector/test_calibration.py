"""Temperature scaling and calibration error against reference implementations."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss
from torchmetrics.classification import BinaryCalibrationError

from deepfake_detector import apply_temperature, binary_nll, expected_calibration_error, fit_temperature
from deepfake_detector.scoring import compute_logits


def test_binary_nll_equals_sklearn_log_loss():
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(0, 3, 500), rng.integers(0, 2, 500)
    for temperature in (0.5, 1.0, 2.5):
        expected = log_loss(labels, apply_temperature(logits, temperature), labels=[0, 1])
        assert binary_nll(logits, labels, temperature) == pytest.approx(expected, rel=1e-9)


def test_fit_recovers_a_known_temperature_and_matches_a_grid_search():
    rng = np.random.default_rng(1)
    true_logits = rng.normal(0, 2, 8000)
    labels = (rng.random(8000) < apply_temperature(true_logits)).astype(int)
    overconfident = 3.0 * true_logits  # a model whose logits are 3x too large needs T = 3
    temperature = fit_temperature(overconfident, labels)
    assert temperature == pytest.approx(3.0, rel=0.05)
    grid = np.exp(np.linspace(np.log(0.5), np.log(10), 600))
    best_on_grid = grid[np.argmin([binary_nll(overconfident, labels, t) for t in grid])]
    assert temperature == pytest.approx(best_on_grid, rel=0.01)


@pytest.mark.slow
def test_temperature_scaling_lowers_or_keeps_validation_nll(toy_training, toy_dataset, toy_split):
    detector = toy_training.detector
    validation = toy_dataset.subset(toy_split.validation)
    logits = compute_logits(detector, validation.images)
    before = binary_nll(logits, validation.labels)
    after = binary_nll(logits, validation.labels, detector.temperature)
    assert after <= before + 1e-12
    assert toy_training.validation["nll_after_scaling"] == pytest.approx(after)


def test_ece_equals_torchmetrics():
    rng = np.random.default_rng(2)
    for n in (50, 1000):
        probabilities, labels = rng.random(n), rng.integers(0, 2, n)
        reference = BinaryCalibrationError(n_bins=15, norm="l1")(
            torch.from_numpy(probabilities), torch.from_numpy(labels)
        )
        assert expected_calibration_error(probabilities, labels) == pytest.approx(float(reference), abs=1e-6)
    # Perfectly calibrated by construction: a bin of p = 0.25 with exactly a quarter positives.
    assert expected_calibration_error(np.full(8, 0.25), np.array([1, 0, 0, 0, 1, 0, 0, 0])) == 0.0
