"""Checkpoints round-trip exactly, carry their provenance and refuse to load when their bytes changed."""
from __future__ import annotations

import numpy as np
import pytest

from deepfake_detector import CheckpointIntegrityError, load_detector, save_detector, score_images


@pytest.mark.slow
def test_round_trip_scores_identically_and_keeps_provenance(toy_training, toy_dataset, tmp_path):
    detector = toy_training.detector
    path = tmp_path / "detector.pt"
    sha256 = save_detector(detector, path, extra_metrics={"test": {"roc_auc": 0.99}})
    loaded = load_detector(path, expected_sha256=sha256, device="cpu")
    assert loaded.sha256 == sha256 == detector.sha256
    assert loaded.temperature == detector.temperature and loaded.config == detector.config
    images = toy_dataset.images[:32]
    np.testing.assert_array_equal(score_images(loaded, images), score_images(detector, images))
    metadata = loaded.metadata
    assert metadata["manifests"] == {"toy": "isic-uda1-first-240"}
    assert metadata["seed"] == 0 and metadata["train_config"]["seed"] == 0
    assert metadata["metrics"]["test"] == {"roc_auc": 0.99} and "validation" in metadata["metrics"]
    assert {"torch", "timm", "numpy", "python", "grad-cam"} <= set(metadata["software"])
    assert metadata["preprocessing"] == detector.preprocessing.name
    # Saving the same detector again gives the same bytes, hence the same hash.
    assert save_detector(detector, tmp_path / "again.pt", extra_metrics={"test": {"roc_auc": 0.99}}) == sha256


@pytest.mark.slow
def test_tampered_or_unexpected_checkpoints_fail_loudly(toy_training, tmp_path):
    path = tmp_path / "detector.pt"
    sha256 = save_detector(toy_training.detector, path)
    with pytest.raises(CheckpointIntegrityError, match="not the expected"):
        load_detector(path, expected_sha256="0" * 64)

    tampered = bytearray(path.read_bytes())
    tampered[-100] ^= 0x01  # one bit inside the payload
    (tmp_path / "tampered.pt").write_bytes(bytes(tampered))
    with pytest.raises(CheckpointIntegrityError, match="differs from the recorded"):
        load_detector(tmp_path / "tampered.pt", expected_sha256=sha256)

    (tmp_path / "other.pt").write_bytes(b"PK\x03\x04 not ours")
    with pytest.raises(CheckpointIntegrityError, match="not a deepfake_detector checkpoint"):
        load_detector(tmp_path / "other.pt")
