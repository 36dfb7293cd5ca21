"""Diversity inside a set: the Vendi score against its definition, MS-SSIM settings valid for the image size,
MS-SSIM over random pairs, and LPIPS only with real backbone weights on disk."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
import torchvision

from metrics.diversity import (
    compute_lpips_diversity,
    compute_ms_ssim_diversity,
    compute_vendi_score,
    lpips_weights_path,
    random_pairs,
)
from metrics.pixel_similarity import ms_ssim_settings


def vendi_by_definition(features: np.ndarray) -> float:
    """exp(Shannon entropy of the eigenvalues of K/n), K the n x n cosine-similarity matrix."""
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    eigenvalues = scipy.linalg.eigvalsh(unit @ unit.T / len(unit))
    eigenvalues = eigenvalues[eigenvalues > 1e-12]
    return float(np.exp(-np.sum(eigenvalues * np.log(eigenvalues))))


def test_vendi_extremes() -> None:
    identical = np.tile(np.arange(1.0, 9.0), (20, 1))
    assert compute_vendi_score(identical, seed=0).value == pytest.approx(1.0, abs=1e-9)
    orthogonal = np.eye(12)
    assert compute_vendi_score(orthogonal, seed=0).value == pytest.approx(12.0, rel=1e-9)


@pytest.mark.parametrize("n,dim", [(50, 200), (300, 40)])  # the n x n and the D x D routes
def test_vendi_equals_its_definition(n, dim) -> None:
    features = np.random.default_rng(n).normal(size=(n, dim)) + 0.5
    result = compute_vendi_score(features, seed=0)
    assert result.value == pytest.approx(vendi_by_definition(features), rel=1e-9)
    assert result.ci.low < result.value < result.ci.high


def test_vendi_on_real_features_is_between_one_and_n(isic_reference) -> None:
    result = compute_vendi_score(isic_reference, seed=0)
    assert 1.0 < result.value < isic_reference.n
    assert result.value == pytest.approx(vendi_by_definition(isic_reference.features.astype(np.float64)), rel=1e-9)
    assert result.label == "Vendi score (EfficientNet-Lite0, ImageNet)"


@pytest.mark.parametrize("size,scales", [(32, 2), (64, 3), (128, 4), (175, 4), (176, 5), (512, 5)])
def test_ms_ssim_settings_are_valid_for_the_image_size(size, scales) -> None:
    settings = ms_ssim_settings(size)
    assert len(settings.betas) == scales and sum(settings.betas) == pytest.approx(1.0)
    assert size // 2 ** (scales - 1) >= settings.kernel_size
    image = np.random.default_rng(0).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    from metrics.pixel_similarity import ms_ssim_pairs

    assert ms_ssim_pairs(image, image, settings)[0] == pytest.approx(1.0, abs=1e-5)


def test_random_pairs_never_pair_an_image_with_itself() -> None:
    pairs = random_pairs(5, 2000, np.random.default_rng(0))
    assert np.all(pairs[:, 0] != pairs[:, 1])
    assert set(np.unique(pairs)) == set(range(5))


def test_ms_ssim_diversity_of_a_real_set_and_of_copies(isic_held_out_squares) -> None:
    real = compute_ms_ssim_diversity(isic_held_out_squares, seed=0, n_pairs=40)
    assert 0.0 < real.mean < 0.9 and real.ci.low <= real.mean <= real.ci.high
    assert "5 scales" in real.settings and "224 px" in real.settings
    copies = np.repeat(isic_held_out_squares[:1], 6, axis=0)
    collapsed = compute_ms_ssim_diversity(copies, seed=0, n_pairs=20)
    assert collapsed.mean == pytest.approx(1.0, abs=1e-5)  # a mode-collapsed set has no diversity


def test_lpips_is_unavailable_without_backbone_weights(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    result = compute_lpips_diversity(np.zeros((4, 64, 64, 3), np.uint8), seed=0)
    assert not result.available and result.mean is None
    assert "not on disk" in result.unavailable_reason and "random weights" in result.unavailable_reason


def test_lpips_runs_once_backbone_weights_are_on_disk(monkeypatch, tmp_path, isic_held_out_squares) -> None:
    """Wiring only: a locally written (random) SqueezeNet backbone file stands in for the real download."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = lpips_weights_path("squeeze")
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.squeezenet1_1().state_dict(), path)
    result = compute_lpips_diversity(isic_held_out_squares[:6], seed=0, net="squeeze", n_pairs=6, size=64)
    assert result.available and np.isfinite(result.mean) and result.mean > 0
