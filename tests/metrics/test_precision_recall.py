"""Precision, recall, density and coverage equal the `prdc` package on the same features, with k stated."""
from __future__ import annotations

import numpy as np
import pytest
from prdc import compute_prdc

from metrics.precision_recall import compute_precision_recall
from metrics.results import InsufficientSamplesError


@pytest.mark.parametrize("k", [3, 5])
def test_equals_prdc_package_on_real_features(isic_reference, pad_features, k, capsys) -> None:
    expected = compute_prdc(isic_reference.features, pad_features.features, nearest_k=k)
    ours = compute_precision_recall(isic_reference, pad_features, seed=0, k=k)
    assert ours.k == k and f"k={k}" in ours.label
    for name in ("precision", "recall", "density", "coverage"):
        assert getattr(ours, name) == pytest.approx(float(expected[name]), abs=1e-12), name


def test_equals_prdc_on_two_halves_of_one_set(isic_reference, isic_held_out) -> None:
    expected = compute_prdc(isic_reference.features, isic_held_out.features, nearest_k=5)
    ours = compute_precision_recall(isic_reference, isic_held_out, seed=0)
    for name in ("precision", "recall", "density", "coverage"):
        assert getattr(ours, name) == pytest.approx(float(expected[name]), abs=1e-12), name
    for name in ("precision_ci", "recall_ci", "density_ci", "coverage_ci"):
        interval = getattr(ours, name)
        assert interval.low <= getattr(ours, name[:-3]) <= interval.high


def test_needs_more_than_k_images() -> None:
    with pytest.raises(InsufficientSamplesError, match="k=5"):
        compute_precision_recall(np.zeros((5, 3)), np.ones((10, 3)), seed=0)
