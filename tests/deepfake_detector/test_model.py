"""The detector network and its optional neighbouring-pixel-residual (NPR) input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from deepfake_detector import Detector, DetectorConfig, load_detector, save_detector, score_images
from deepfake_detector.model import ResidualInputViT, build_vit, neighbouring_pixel_residuals


def test_residuals_are_zero_on_the_sampled_grid_and_see_only_local_structure():
    images = torch.rand(2, 3, 8, 8)
    residuals = neighbouring_pixel_residuals(images)
    assert torch.all(residuals[:, :, ::2, ::2] == 0)
    assert torch.allclose(residuals[:, :, 1, 0], images[:, :, 1, 0] - images[:, :, 0, 0])
    assert torch.allclose(residuals[:, :, 1, 1], images[:, :, 1, 1] - images[:, :, 0, 0])
    # A picture constant on 2x2 cells (a nearest-neighbour 2x up-sampling) has no residual at all.
    blocky = torch.nn.functional.interpolate(torch.rand(1, 3, 4, 4), scale_factor=2.0, mode="nearest")
    assert torch.all(neighbouring_pixel_residuals(blocky) == 0)


def test_npr_input_changes_what_the_network_sees_but_not_its_weights(tmp_path):
    torch.manual_seed(0)
    rgb = build_vit(DetectorConfig(depth=1, input="rgb"))
    npr = build_vit(DetectorConfig(depth=1, input="npr"))
    assert type(rgb).__name__ == "VisionTransformer" and isinstance(npr, ResidualInputViT)
    assert rgb.state_dict().keys() == npr.state_dict().keys()
    npr.load_state_dict(rgb.state_dict())
    images = np.random.default_rng(0).integers(0, 256, size=(4, 64, 64, 3), dtype=np.uint8)
    as_rgb, as_npr = Detector(rgb, DetectorConfig(depth=1, input="rgb")), Detector(npr, DetectorConfig(depth=1, input="npr"))
    assert not np.allclose(score_images(as_rgb, images), score_images(as_npr, images))
    sha256 = save_detector(as_npr, tmp_path / "npr.pt")
    loaded = load_detector(tmp_path / "npr.pt", expected_sha256=sha256, device="cpu")
    assert loaded.config.input == "npr" and isinstance(loaded.model, ResidualInputViT)
    np.testing.assert_array_equal(score_images(loaded, images), score_images(as_npr, images))


def test_unknown_input_is_refused():
    with pytest.raises(ValueError, match="input must be"):
        build_vit(DetectorConfig(input="fft"))
