"""Our ROAD imputation against pytorch-grad-cam's: the same equations, the same noise, the same scores."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_grad_cam.metrics.road import NoisyLinearImputer, ROADCombined, neighbors_weights
from scipy.ndimage import gaussian_filter
from scipy.sparse import csc_matrix

from deepfake_detector.faithfulness import LinearImputer, RoadCombined, linear_imputation_system


def _smooth_mask(rng: np.random.Generator, percentile: int, size: int = 32) -> np.ndarray:
    cam = gaussian_filter(rng.random((size, size)), 3)
    return np.float32(cam < np.percentile(cam, percentile))


@pytest.mark.parametrize("percentile", [10, 50, 90])
def test_the_system_is_the_librarys_system(percentile):
    rng = np.random.default_rng(percentile)
    image = rng.normal(size=(3, 32, 32)).astype(np.float32)
    mask = _smooth_mask(rng, percentile)
    expected_a, expected_b = NoisyLinearImputer.setup_sparse_system(mask, image, neighbors_weights)
    a, b, removed = linear_imputation_system(mask, image)
    assert (csc_matrix(expected_a) != a).nnz == 0
    assert np.array_equal(expected_b, b)
    assert np.array_equal(removed, np.flatnonzero(mask.reshape(-1) == 0))
    assert (a != a.T).nnz == 0  # symmetric: what allows the symmetric-mode LU


def test_imputed_images_match_the_librarys_with_the_same_noise():
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.normal(size=(3, 32, 32)).astype(np.float32))
    for percentile in (10, 40, 80):
        mask = torch.from_numpy(_smooth_mask(rng, percentile))
        torch.manual_seed(percentile)
        expected = NoisyLinearImputer()(image, mask)
        torch.manual_seed(percentile)
        ours = LinearImputer()(image, mask)
        kept = mask.bool()
        assert torch.equal(ours[:, kept], image[:, kept])
        assert torch.allclose(ours, expected, atol=1e-6, rtol=0)
        assert not torch.allclose(ours[:, ~kept], image[:, ~kept])  # something was imputed


def test_road_scores_match_the_librarys_road_combined():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
    rng = np.random.default_rng(1)
    images = torch.from_numpy(rng.normal(size=(4, 3, 32, 32)).astype(np.float32))
    cams = np.stack([gaussian_filter(rng.random((32, 32)), 3).astype(np.float32) for _ in range(4)])
    targets = [lambda output: output[1]] * 4
    percentiles = [20, 50, 80]
    torch.manual_seed(7)
    expected = ROADCombined(percentiles=percentiles)(images, cams, targets, model)
    torch.manual_seed(7)
    ours = RoadCombined(percentiles)(images, cams, targets, model)
    np.testing.assert_allclose(ours, expected, atol=1e-5, rtol=0)
