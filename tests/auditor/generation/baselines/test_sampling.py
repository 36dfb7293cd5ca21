from __future__ import annotations

import numpy as np
import pytest

from auditor.generation.baselines import Checkpoint, TrainingImages, allocate_class_counts, sample, train

from tests.auditor.generation.baselines.conftest import tiny_config


@pytest.fixture(scope="module")
def conditional(isic_small: TrainingImages) -> Checkpoint:
    return train(tiny_config("cdcgan"), isic_small)


@pytest.fixture(scope="module")
def vae(isic_small: TrainingImages) -> Checkpoint:
    return train(tiny_config("vae"), isic_small)


def test_conditional_sampling_respects_requested_class_counts(conditional: Checkpoint) -> None:
    batch = sample(conditional, 9, seed=0, class_counts={1: 7, 0: 2})
    assert batch.images.shape == (9, 32, 32, 3) and batch.images.dtype == np.uint8
    assert batch.labels is not None
    assert np.bincount(batch.labels, minlength=2).tolist() == [2, 7]
    assert batch.class_names == ("melanoma", "nevus")


def test_the_class_label_changes_the_image(conditional: Checkpoint) -> None:
    # Same seed, so image i gets the same latent: only the label differs between the two batches.
    as_melanoma = sample(conditional, 4, seed=0, class_counts={0: 4}).images
    as_nevus = sample(conditional, 4, seed=0, class_counts={1: 4}).images
    assert not np.array_equal(as_melanoma, as_nevus)


def test_without_class_counts_classes_follow_training_frequencies(
    conditional: Checkpoint, isic_small: TrainingImages
) -> None:
    batch = sample(conditional, 20, seed=0)
    expected = allocate_class_counts(20, isic_small.class_frequencies())
    assert batch.labels is not None
    assert np.bincount(batch.labels, minlength=2).tolist() == [expected[0], expected[1]]


def test_allocation_uses_largest_remainders() -> None:
    assert allocate_class_counts(10, np.array([1.0, 1.0, 1.0])) == {0: 4, 1: 3, 2: 3}
    assert allocate_class_counts(7, np.array([0.5, 0.3, 0.2])) == {0: 4, 1: 2, 2: 1}
    assert allocate_class_counts(0, np.array([0.5, 0.5])) == {0: 0, 1: 0}


def test_invalid_class_requests_are_rejected(conditional: Checkpoint, vae: Checkpoint) -> None:
    with pytest.raises(ValueError, match="sum"):
        sample(conditional, 5, seed=0, class_counts={0: 2, 1: 2})
    with pytest.raises(ValueError, match="not one of"):
        sample(conditional, 2, seed=0, class_counts={2: 2})
    with pytest.raises(ValueError, match="unconditional"):
        sample(vae, 2, seed=0, class_counts={0: 2})


def test_samples_depend_on_seed_only_not_on_batching(vae: Checkpoint) -> None:
    whole = sample(vae, 10, seed=4, batch_size=10).images
    # Batch composition must not matter (eval-mode batch norm); rounding to uint8 may differ by one level at most.
    assert np.abs(sample(vae, 10, seed=4, batch_size=3).images.astype(int) - whole).max() <= 1
    assert np.abs(sample(vae, 4, seed=4).images.astype(int) - whole[:4]).max() <= 1
    assert not np.array_equal(sample(vae, 10, seed=5).images, whole)
