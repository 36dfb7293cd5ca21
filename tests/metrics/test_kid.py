"""KID equals torchmetrics' KernelInceptionDistance on the same features; subsets never exceed N."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torchmetrics.image.kid import KernelInceptionDistance, poly_mmd

from metrics.kid import compute_kernel_distance, polynomial_kernel, unbiased_mmd2
from metrics.kid import _jackknife_mmd2


class _Identity(torch.nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.num_features = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_full_set_value_equals_torchmetrics_kid(isic_reference, pad_features) -> None:
    reference = isic_reference.features[:120].astype(np.float64)
    generated = pad_features.features.astype(np.float64)
    metric = KernelInceptionDistance(feature=_Identity(1280), subsets=1, subset_size=120)
    metric.update(torch.from_numpy(reference), real=True)
    metric.update(torch.from_numpy(generated), real=False)
    expected_mean, _ = metric.compute()
    ours = compute_kernel_distance(reference, generated, seed=0, subsets=1, subset_size=120)
    assert ours.value == pytest.approx(float(expected_mean), rel=1e-9)
    assert ours.full_sample_value == pytest.approx(float(expected_mean), rel=1e-9)


def test_subset_scores_equal_torchmetrics_poly_mmd_on_the_same_subsets() -> None:
    rng = np.random.default_rng(0)
    reference, generated = rng.normal(size=(90, 16)), rng.normal(size=(70, 16)) * 1.1 + 0.1
    ours = compute_kernel_distance(reference, generated, seed=42, subsets=6, subset_size=40, n_jackknife_groups=0)
    draws = np.random.default_rng(42)  # same draw order as the implementation: reference then generated
    expected = []
    for _ in range(6):
        r, g = draws.permutation(90)[:40], draws.permutation(70)[:40]
        expected.append(float(poly_mmd(torch.from_numpy(reference[r]), torch.from_numpy(generated[g]))))
    assert ours.value == pytest.approx(np.mean(expected), rel=1e-9)
    assert ours.subset_std == pytest.approx(np.std(expected, ddof=1), rel=1e-9)


def test_subset_size_is_capped_at_n_and_said_so() -> None:
    rng = np.random.default_rng(1)
    result = compute_kernel_distance(rng.normal(size=(50, 8)), rng.normal(size=(30, 8)), seed=0)
    assert result.subset_size == 30 and result.subset_size_capped
    assert "x.y * 1/8 + 1)^3" in result.kernel


def test_jackknife_replicates_equal_recomputation_without_the_group() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(40, 6)), rng.normal(size=(30, 6))
    k_aa, k_bb, k_ab = polynomial_kernel(a, a), polynomial_kernel(b, b), polynomial_kernel(a, b)
    groups_a, groups_b = np.array_split(rng.permutation(40), 4), np.array_split(rng.permutation(30), 4)
    fast = _jackknife_mmd2(k_aa, k_ab, k_bb, groups_a, groups_b)
    for g in range(4):
        keep_a, keep_b = np.setdiff1d(np.arange(40), groups_a[g]), np.setdiff1d(np.arange(30), groups_b[g])
        slow = unbiased_mmd2(k_aa[np.ix_(keep_a, keep_a)], k_ab[np.ix_(keep_a, keep_b)], k_bb[np.ix_(keep_b, keep_b)])
        assert fast[g] == pytest.approx(slow, rel=1e-9)


def test_interval_contains_full_sample_value(isic_reference, pad_features) -> None:
    result = compute_kernel_distance(isic_reference, pad_features, seed=0, subset_size=100)
    assert result.ci.low < result.full_sample_value < result.ci.high
    assert result.label == "KID (EfficientNet-Lite0, ImageNet)"
