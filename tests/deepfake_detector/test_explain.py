"""Grad-CAM on the ViT: right shapes, the class token dropped, overlays written, and faithful by ROAD."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from deepfake_detector import compute_cams, road_faithfulness, save_overlays, score_images
from deepfake_detector.explain import class_token_dropping_reshape

from .conftest import WINDOW

# pytorch-grad-cam's ROAD converts torch scalars with np.float32(list), which numpy 2 warns about.
pytestmark = pytest.mark.filterwarnings("ignore:__array_wrap__ must accept context:DeprecationWarning")


def test_reshape_drops_the_class_token_and_keeps_patch_order():
    tokens = torch.arange(2 * 65 * 3, dtype=torch.float32).reshape(2, 65, 3)
    grid = class_token_dropping_reshape(8)(tokens)
    assert grid.shape == (2, 3, 8, 8)
    # Patch k (row-major, after the class token) sits at (k // 8, k % 8).
    assert torch.equal(grid[1, :, 2, 5], tokens[1, 1 + 2 * 8 + 5])


@pytest.mark.slow
def test_cam_methods_give_maps_at_input_resolution(toy_training, toy_dataset, toy_split):
    test = toy_dataset.subset(toy_split.test)
    images = test.images[::4]
    for method in ("gradcam", "gradcam++", "eigencam"):
        result = compute_cams(toy_training.detector, images, method=method, target="synthetic")
        assert result.maps.shape == (len(images), 64, 64) and result.maps.dtype == np.float32
        assert result.maps.min() >= 0.0 and result.maps.max() <= 1.0 + 1e-6
        assert 0.0 <= result.share_all_zero <= 1.0
    predicted = compute_cams(toy_training.detector, images, method="gradcam", target="predicted")
    np.testing.assert_array_equal(predicted.target_signs, np.where(predicted.logits >= 0, 1, -1))


@pytest.mark.slow
def test_gradcam_heat_is_denser_inside_the_artefact_window(toy_training, toy_dataset, toy_split, toy_windows):
    n_real = int((toy_dataset.labels == 0).sum())
    synthetic_indices = toy_split.test[toy_split.test >= n_real]
    maps = compute_cams(toy_training.detector, toy_dataset.images[synthetic_indices], target="synthetic").maps
    ratios = []
    for heat, (top, left) in zip(maps, toy_windows[synthetic_indices - n_real]):
        inside = np.zeros(heat.shape, bool)
        inside[top : top + WINDOW, left : left + WINDOW] = True
        if heat.sum() > 0:
            ratios.append(heat[inside].mean() / max(heat[~inside].mean(), 1e-6))
    assert len(ratios) >= len(maps) // 2
    # The window covers 56 % of the image. Measured median ratio: 1.86 with the default residual (NPR) input, above
    # 2 with pixel input; a map that ignored the window would sit near 1.
    assert np.median(ratios) > 1.5, ratios


@pytest.mark.slow
def test_overlays_are_saved_for_the_confidence_extremes(toy_training, toy_dataset, toy_split, tmp_path):
    test = toy_dataset.subset(toy_split.test)
    probabilities = score_images(toy_training.detector, test.images)
    records = save_overlays(toy_training.detector, test.images, test.labels, probabilities, tmp_path, per_class=2)
    assert len(records) == 8
    assert {(r.label, r.rank) for r in records} == {
        (label, rank) for label in (0, 1) for rank in ("most_confident", "least_confident")
    }
    synthetic = [r for r in records if r.label == 1]
    most = min(r.probability_synthetic for r in synthetic if r.rank == "most_confident")
    least = max(r.probability_synthetic for r in synthetic if r.rank == "least_confident")
    assert most >= least
    with Image.open(records[0].path) as png:
        assert png.format == "PNG" and png.size == (2 * 64 * 4, 64 * 4)


@pytest.mark.slow
def test_road_gradcam_beats_random_cam_on_the_toy_task(toy_training, toy_dataset, toy_split):
    test = toy_dataset.subset(toy_split.test)
    chosen = np.r_[np.flatnonzero(test.labels == 0)[:8], np.flatnonzero(test.labels == 1)[:8]]
    result = road_faithfulness(
        toy_training.detector,
        test.images[chosen],
        method="gradcam",
        target="synthetic",
        random_seeds=(0, 1, 2),
        percentiles=(20, 50, 80),
        n_bootstrap=500,
    )
    assert result.n_images == 16 and len(result.random_seed_means) == 3
    assert result.method_beats_random, result
    assert result.difference_ci_low > 0 and result.difference_mean > 0


def test_road_scores_of_a_subset_are_those_images_scores():
    from deepfake_detector.faithfulness import RoadImageScores, summarise_road

    method = np.array([0.5, 0.1, 0.9, 0.3])
    random = np.array([[0.1, 0.2, 0.3, 0.4], [0.3, 0.0, 0.1, 0.2]])
    scores = RoadImageScores(method, random, np.array([False, True, False, False]), seconds=8.0)
    part = scores.subset(np.array([True, False, True, False]))
    assert part.method_scores.tolist() == [0.5, 0.9] and part.random_scores.tolist() == [[0.1, 0.3], [0.3, 0.1]]
    assert part.all_zero.tolist() == [False, False] and part.seconds == 4.0
    summary = summarise_road(part, method="gradcam", target="synthetic", n_bootstrap=200)
    assert summary.n_images == 2 and summary.difference_mean == pytest.approx(np.mean([0.5 - 0.2, 0.9 - 0.2]))
