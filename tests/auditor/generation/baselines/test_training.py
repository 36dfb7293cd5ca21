from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from auditor.generation.baselines import (
    TrainConfig,
    TrainingImages,
    TrainProgress,
    encode_class_labels,
    load_training_images,
    sample,
    train,
)

from tests.auditor.generation.baselines.conftest import isic_subset_paths_and_diagnoses, tiny_config


@pytest.mark.parametrize("kind", ["dcgan", "cdcgan", "vae"])
def test_each_kind_trains_with_finite_losses(kind: str, isic_small: TrainingImages) -> None:
    reports: list[TrainProgress] = []
    checkpoint = train(tiny_config(kind), isic_small, progress=reports.append)
    assert checkpoint.steps == 3 and checkpoint.stop_reason == "max_steps"
    assert [report.step for report in reports] == [1, 2, 3]
    assert reports[0].fraction_done == pytest.approx(1 / 3) and reports[-1].fraction_done == 1.0
    assert len(checkpoint.loss_history) == 3
    for entry in checkpoint.loss_history:
        assert all(math.isfinite(value) for value in entry.values())
    expected = {"d_loss", "d_real", "d_fake", "g_loss"} if kind != "vae" else {"loss", "reconstruction", "kl"}
    assert expected <= set(reports[-1].losses)
    assert all(torch.isfinite(tensor).all() for tensor in checkpoint.model_state.values())


@pytest.mark.slow
def test_default_config_trains_and_samples_at_64_px(isic_dir: Path) -> None:
    # The production defaults (64 px, batch 64, widths 48) for one step, on 16 real images.
    paths, _ = isic_subset_paths_and_diagnoses(isic_dir, 16)
    checkpoint = train(TrainConfig(kind="dcgan", max_steps=1, num_threads=1), load_training_images(paths, image_size=64))
    assert all(math.isfinite(value) for value in checkpoint.loss_history[-1].values())
    assert sample(checkpoint, 2, seed=0).images.shape == (2, 64, 64, 3)


@pytest.mark.parametrize("kind", ["cdcgan", "vae"])
def test_128_px_networks_train_and_sample(kind: str, isic_dir: Path) -> None:
    paths, diagnoses = isic_subset_paths_and_diagnoses(isic_dir, 8)
    labels, class_names = encode_class_labels(diagnoses)
    images = load_training_images(paths, image_size=128, labels=labels, class_names=class_names)
    config = tiny_config(kind, image_size=128, batch_size=4, ngf=8, ndf=8, max_steps=1)
    checkpoint = train(config, images)
    assert all(math.isfinite(value) for value in checkpoint.loss_history[-1].values())
    assert sample(checkpoint, 2, seed=0).images.shape == (2, 128, 128, 3)


@pytest.mark.parametrize("kind", ["cdcgan", "vae"])
def test_same_seed_gives_bit_identical_weights_and_another_seed_does_not(kind: str, isic_small: TrainingImages) -> None:
    first = train(tiny_config(kind, seed=5), isic_small).model_state
    second = train(tiny_config(kind, seed=5), isic_small).model_state
    other = train(tiny_config(kind, seed=6), isic_small).model_state
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert any(not torch.equal(first[name], other[name]) for name in first)


def test_vae_reconstruction_loss_decreases(isic_small: TrainingImages) -> None:
    checkpoint = train(tiny_config("vae", max_steps=12), isic_small)
    reconstruction = [entry["reconstruction"] for entry in checkpoint.loss_history]
    assert sum(reconstruction[-3:]) < 0.8 * sum(reconstruction[:3])


def test_cancellation_stops_the_run_and_returns_a_checkpoint_marked_cancelled(isic_small: TrainingImages) -> None:
    polls: list[int] = []

    def should_stop() -> bool:
        polls.append(1)
        return len(polls) > 2  # polled before each step here (progress_every=1): stop after two steps

    checkpoint = train(tiny_config("dcgan", max_steps=50), isic_small, should_stop=should_stop)
    assert checkpoint.cancelled and checkpoint.stop_reason == "cancelled"
    assert checkpoint.steps == 2
    assert sample(checkpoint, 2, seed=0).images.shape == (2, 32, 32, 3)


def test_time_budget_stops_the_run(isic_small: TrainingImages) -> None:
    checkpoint = train(tiny_config("dcgan", max_steps=None, max_seconds=0.5), isic_small)
    assert checkpoint.stop_reason == "max_seconds"
    assert checkpoint.steps >= 1
    assert checkpoint.elapsed_seconds >= 0.5


def test_callers_random_state_is_left_untouched(isic_small: TrainingImages) -> None:
    torch.manual_seed(123)
    state = torch.get_rng_state()
    train(tiny_config("dcgan", max_steps=1), isic_small)
    assert torch.equal(torch.get_rng_state(), state)


def test_config_needs_a_budget_and_labels_for_the_conditional_kind(isic_dir: Path) -> None:
    with pytest.raises(ValueError, match="budget"):
        TrainConfig(kind="dcgan")
    paths, _ = isic_subset_paths_and_diagnoses(isic_dir, 4)
    with pytest.raises(ValueError, match="labelled"):
        train(tiny_config("cdcgan"), load_training_images(paths, image_size=32))
