from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import pytest
import torch

from auditor.generation.baselines import (
    Checkpoint,
    CheckpointFormatError,
    CheckpointIntegrityError,
    TrainingImages,
    file_sha256,
    load_checkpoint,
    sample,
    save_checkpoint,
    train,
)

from tests.auditor.generation.baselines.conftest import tiny_config


@pytest.fixture(scope="module")
def conditional_checkpoint(isic_small: TrainingImages) -> Checkpoint:
    return train(tiny_config("cdcgan", seed=3), isic_small)


def test_round_trip_gives_identical_samples_and_keeps_the_provenance(
    conditional_checkpoint: Checkpoint, isic_small: TrainingImages, tmp_path: Path
) -> None:
    path = tmp_path / "run" / "generator.pt"
    sha256 = save_checkpoint(conditional_checkpoint, path)
    assert sha256 == file_sha256(path) == conditional_checkpoint.sha256
    loaded = load_checkpoint(path, sha256)

    before = sample(conditional_checkpoint, 12, seed=11, class_counts={0: 5, 1: 7})
    after = sample(loaded, 12, seed=11, class_counts={0: 5, 1: 7})
    np.testing.assert_array_equal(before.images, after.images)
    np.testing.assert_array_equal(before.labels, after.labels)
    assert all(torch.equal(conditional_checkpoint.model_state[k], loaded.model_state[k]) for k in loaded.model_state)

    assert loaded.config == conditional_checkpoint.config
    assert loaded.seed == 3 and loaded.steps == 3 and loaded.stop_reason == "max_steps"
    assert loaded.manifest_sha256 == isic_small.manifest_sha256
    assert loaded.preprocessing == isic_small.preprocessing
    assert loaded.class_names == ("melanoma", "nevus")
    assert sum(loaded.training_class_counts or ()) == len(isic_small) == loaded.training_image_count
    assert loaded.loss_history == conditional_checkpoint.loss_history
    assert loaded.software["torch"] == torch.__version__
    assert loaded.software["python"] == platform.python_version()
    assert loaded.sha256 == sha256


def test_tampered_checkpoint_fails_loudly(conditional_checkpoint: Checkpoint, tmp_path: Path) -> None:
    path = tmp_path / "generator.pt"
    sha256 = save_checkpoint(conditional_checkpoint, path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit, somewhere in the weights
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointIntegrityError, match="SHA-256"):
        load_checkpoint(path, sha256)


def test_wrong_expected_hash_fails_loudly(conditional_checkpoint: Checkpoint, tmp_path: Path) -> None:
    path = tmp_path / "generator.pt"
    save_checkpoint(conditional_checkpoint, path)
    with pytest.raises(CheckpointIntegrityError):
        load_checkpoint(path, "0" * 64)


def test_file_with_the_right_hash_but_not_a_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "not-a-checkpoint.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointFormatError):
        load_checkpoint(path, file_sha256(path))
