"""Fréchet distance: equal to torchmetrics' FrechetInceptionDistance on the same features, refuses N <= D,
a CI that contains the estimate, FD-infinity that removes the N-bias, and the real-vs-real floor."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from torchmetrics.image.fid import FrechetInceptionDistance

from metrics.frechet import (
    compute_fd_infinity,
    compute_frechet_distance,
    compute_real_floor,
    frechet_distance_from_statistics,
)
from metrics.results import InsufficientSamplesError


class _Identity(torch.nn.Module):
    """Hands features straight to torchmetrics' FID, so it computes FD of exactly the given rows."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.num_features = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def torchmetrics_fd(reference: np.ndarray, generated: np.ndarray) -> float:
    metric = FrechetInceptionDistance(feature=_Identity(reference.shape[1]))
    metric.update(torch.from_numpy(np.asarray(reference, np.float64)), real=True)
    metric.update(torch.from_numpy(np.asarray(generated, np.float64)), real=False)
    return float(metric.compute())


def correlated_gaussians(n1: int, n2: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    return rng.normal(size=(n1, dim)) @ mixing + 0.3, (rng.normal(size=(n2, dim)) * 1.2) @ mixing


@pytest.mark.parametrize("n1,n2,dim", [(400, 300, 64), (1200, 900, 256)])
def test_equals_torchmetrics_fid_on_full_rank_features(n1, n2, dim) -> None:
    reference, generated = correlated_gaussians(n1, n2, dim, seed=dim)
    ours = compute_frechet_distance(reference, generated, seed=0, n_jackknife_groups=0)
    assert ours.full_rank
    assert ours.value == pytest.approx(torchmetrics_fd(reference, generated), rel=1e-6)


def test_equals_torchmetrics_fid_on_real_features(isic_reference, pad_features) -> None:
    """Real EfficientNet-Lite0 features (the first 384 of 1280 columns, to keep torchmetrics' general
    eigensolver quick), N below D as in every small audit."""
    reference, generated = isic_reference.features[:, :384], pad_features.features[:, :384]
    ours = compute_frechet_distance(reference, generated, seed=0, n_jackknife_groups=0, allow_rank_deficient=True)
    assert not ours.full_rank
    assert ours.value == pytest.approx(torchmetrics_fd(reference, generated), rel=1e-6)
    assert ours.value == pytest.approx(ours.mean_term + ours.covariance_term)
    full = compute_frechet_distance(isic_reference, pad_features, seed=0, n_jackknife_groups=0, allow_rank_deficient=True)
    assert full.label == "FD (EfficientNet-Lite0, ImageNet)"


def test_statistics_form_equals_the_sqrtm_textbook_formula() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(200, 20)), rng.normal(size=(150, 20)) * 0.7 + 0.2
    mu1, mu2, s1, s2 = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    textbook = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance_from_statistics(mu1, s1, mu2, s2) == pytest.approx(textbook, rel=1e-9)
    assert compute_frechet_distance(a, b, seed=0, n_jackknife_groups=0).value == pytest.approx(textbook, rel=1e-9)


def test_refuses_fewer_images_than_feature_dimensions(isic_reference, pad_features) -> None:
    with pytest.raises(InsufficientSamplesError, match=r"D=1280"):
        compute_frechet_distance(isic_reference, pad_features, seed=0)
    with pytest.raises(InsufficientSamplesError, match="at least 2"):
        compute_frechet_distance(np.zeros((1, 4)), np.zeros((5, 4)), seed=0, allow_rank_deficient=True)


def test_refuses_sets_from_different_extractors(isic_reference) -> None:
    from dataclasses import replace

    other = replace(isic_reference, preprocessing_id="rgb8-other-resize")
    with pytest.raises(ValueError, match="extracted differently"):
        compute_frechet_distance(isic_reference, other, seed=0, allow_rank_deficient=True)


def test_interval_contains_the_estimate_and_is_reproducible() -> None:
    reference, generated = correlated_gaussians(500, 400, 32, seed=1)
    first = compute_frechet_distance(reference, generated, seed=7)
    again = compute_frechet_distance(reference, generated, seed=7)
    assert first.ci.low < first.value < first.ci.high
    assert first.standard_error > 0 and "jackknife" in first.ci.method
    assert first.to_dict() == again.to_dict()
    generator_a, generator_b = np.random.default_rng(11), np.random.default_rng(11)
    assert (
        compute_frechet_distance(reference, generated, seed=generator_a).to_dict()
        == compute_frechet_distance(reference, generated, seed=generator_b).to_dict()
    )


def test_interval_covers_the_sampling_spread() -> None:
    """Fresh samples from the same two Gaussians: the jackknife SE matches the spread of FD across draws."""
    rng = np.random.default_rng(5)
    scales = 1 / np.sqrt(np.arange(1, 17))
    values, errors = [], []
    for trial in range(40):
        a = rng.normal(size=(150, 16)) * scales
        b = rng.normal(size=(150, 16)) * scales * 1.2 + 0.05
        result = compute_frechet_distance(a, b, seed=trial)
        values.append(result.value)
        errors.append(result.standard_error)
    ratio = np.mean(errors) / np.std(values, ddof=1)
    assert 0.8 < ratio < 1.6, ratio


def test_fd_infinity_removes_most_of_the_n_bias() -> None:
    """Two Gaussians with a known FD: FD at N is biased upward, the extrapolation lands near the truth."""
    rng = np.random.default_rng(2)
    dim = 24
    true_fd = dim * 0.1**2 + dim * (1.0 + 1.3**2 - 2 * 1.3)  # shifted means, scaled identity covariance
    reference = rng.normal(size=(6000, dim))
    generated = rng.normal(size=(3000, dim)) * 1.3 + 0.1
    at_n = compute_frechet_distance(reference, generated, seed=0, n_jackknife_groups=0).value
    extrapolated = compute_fd_infinity(reference, generated, seed=0, min_n=300)
    assert at_n > true_fd
    assert abs(extrapolated.value - true_fd) < 0.5 * abs(at_n - true_fd)
    assert extrapolated.r_squared > 0.9 and len(extrapolated.sample_sizes) == 15


def test_fd_infinity_refuses_sizes_below_full_rank() -> None:
    reference, generated = correlated_gaussians(300, 60, 64, seed=0)
    with pytest.raises(InsufficientSamplesError):
        compute_fd_infinity(reference, generated, seed=0)


def test_real_floor_is_below_a_far_set_at_the_same_n(isic_reference, pad_features) -> None:
    floor = compute_real_floor(isic_reference, pad_features, seed=0)
    assert floor.n_per_set == 90 and len(floor.floor_values) == 5
    assert floor.generated > 1.5 * floor.floor
    assert floor.label == "FD (EfficientNet-Lite0, ImageNet) real-vs-real floor"
