"""Inception-V3 (FID) wiring: with DERMAUDIT_INCEPTION_WEIGHTS pointing at a weights file of the right shape,
features are those of torchmetrics' own FID network and FD equals torchmetrics' FID. The weights are generated
locally (random, seeded): this checks the wiring, not the published network."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torchmetrics.image.fid import FrechetInceptionDistance, _compute_fid

from metrics import extractors
from metrics.features import available_extractors, extract_features, get_extractor
from metrics.frechet import compute_frechet_distance
from metrics.image_io import load_square


class _Skeleton(FeatureExtractorInceptionV3):
    """The FID network's layers without loading any weights, to write a correctly shaped weights file."""

    def load_state_dict(self, state_dict, strict=True, assign=False):  # noqa: ARG002 - skip loading
        return None


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("inception")
    torch.save({}, folder / "empty.pth")
    torch.manual_seed(0)
    skeleton = _Skeleton("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(folder / "empty.pth"))
    path = folder / "weights-inception-2015-12-05-6726825d.pth"
    torch.save(skeleton.state_dict(), path)
    return path


@pytest.mark.slow
def test_inception_features_and_fd_match_torchmetrics(inception_weights, monkeypatch, isic_paths, pad_paths) -> None:
    monkeypatch.setenv("DERMAUDIT_INCEPTION_WEIGHTS", str(inception_weights))
    assert available_extractors()["inception-v3-fid"] is None
    extractor = get_extractor("inception-v3-fid")
    assert extractor.weights_sha256 == extractors.weights_sha256(inception_weights)

    real_paths, fake_paths = isic_paths[:3], pad_paths[:3]
    real = extract_features(real_paths, "inception-v3-fid")
    fake = extract_features(fake_paths, "inception-v3-fid")
    assert real.features.shape == (3, 2048) and real.extractor_id == "inception-v3-fid"

    # torchmetrics' FID builds its network from the same file; run it on the same 299-px uint8 images.
    reference = FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=str(inception_weights))

    def as_uint8(paths):
        return torch.from_numpy(np.stack([load_square(p, 299) for p in paths])).permute(0, 3, 1, 2)

    with torch.inference_mode():
        expected_real = reference.inception(as_uint8(real_paths)).double()
        expected_fake = reference.inception(as_uint8(fake_paths)).double()
    scale = float(expected_real.abs().max())
    np.testing.assert_allclose(real.features, expected_real.numpy(), rtol=0, atol=1e-5 * scale)
    np.testing.assert_allclose(fake.features, expected_fake.numpy(), rtol=0, atol=1e-5 * scale)

    expected_fd = _compute_fid(
        expected_real.mean(0), torch.cov(expected_real.T), expected_fake.mean(0), torch.cov(expected_fake.T)
    )
    ours = compute_frechet_distance(real, fake, seed=0, n_jackknife_groups=0, allow_rank_deficient=True)
    assert ours.label == "FID (Inception-V3)"
    # 3 images in 2048 dimensions: torchmetrics' general eigvals of a singular product carry rounding noise.
    assert ours.value == pytest.approx(float(expected_fd), rel=1e-4)
