"""Temperature scaling (Guo et al. 2017) for a single-logit binary detector, and the calibration error.

Everything is float64: the fit minimises a mean log-loss whose differences between temperatures can be tiny.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit


def apply_temperature(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """P(synthetic) = sigmoid(logit / T)."""
    return expit(np.asarray(logits, dtype=np.float64) / float(temperature))


def binary_nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of 0/1 labels under sigmoid(logit / T), computed without overflow."""
    scaled = np.asarray(logits, dtype=np.float64) / float(temperature)
    labels = np.asarray(labels, dtype=np.float64)
    # -log sigmoid(z) = log(1 + e^-z); -log(1 - sigmoid(z)) = log(1 + e^z)
    return float(np.mean(labels * np.logaddexp(0.0, -scaled) + (1.0 - labels) * np.logaddexp(0.0, scaled)))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The temperature minimising validation NLL; never returns one that is worse than T = 1 on these data."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    result = minimize_scalar(
        lambda log_t: binary_nll(logits, labels, float(np.exp(log_t))),
        bounds=(np.log(bounds[0]), np.log(bounds[1])),
        method="bounded",
        options={"xatol": 1e-6},
    )
    temperature = float(np.exp(result.x))
    if binary_nll(logits, labels, temperature) > binary_nll(logits, labels, 1.0):
        return 1.0
    return temperature


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Binary ECE of P(synthetic): sum over equal-width bins of |mean P - share synthetic| * bin weight.

    This is the reliability of the positive-class probability (the convention of torchmetrics'
    ``BinaryCalibrationError`` with ``norm="l1"``), not the top-label ECE. Bins are [lo, hi), the last one [lo, 1].
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    if len(probabilities) == 0:
        raise ValueError("ECE of an empty set")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bin_index = np.clip(np.searchsorted(edges, probabilities, side="right") - 1, 0, n_bins - 1)
    counts = np.bincount(bin_index, minlength=n_bins).astype(np.float64)
    sum_probability = np.bincount(bin_index, weights=probabilities, minlength=n_bins)
    sum_label = np.bincount(bin_index, weights=labels, minlength=n_bins)
    occupied = counts > 0
    gaps = np.abs(sum_probability[occupied] - sum_label[occupied]) / counts[occupied]
    return float(np.sum(gaps * counts[occupied]) / len(probabilities))
