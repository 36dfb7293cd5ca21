"""The named degradations and the training augmentation do what their names say."""
from __future__ import annotations

import numpy as np
from scipy.stats import norm

from deepfake_detector import WangAugmentation
from deepfake_detector.augment import augment_batch
from deepfake_detector.perturbations import ROBUSTNESS_PERTURBATIONS, down_up_resize, gaussian_blur


def test_gaussian_blur_of_a_step_edge_follows_the_normal_cdf():
    # A blurred step edge is the Gaussian's cumulative distribution: an independent check of what "sigma" means.
    step = np.zeros((8, 64, 3), dtype=np.uint8)
    step[:, 32:] = 255
    sigma = 2.0
    profile = gaussian_blur(step, sigma)[4, :, 0].astype(np.float64)
    offsets = np.arange(64) - 31.5  # the edge lies between columns 31 and 32
    expected = 255.0 * norm.cdf(offsets / sigma)
    assert np.abs(profile - expected)[16:48].max() < 1.5


def test_down_up_resize_removes_the_highest_frequencies():
    checker = (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)
    image = np.repeat(checker[:, :, None], 3, axis=2)
    assert np.abs(down_up_resize(image).astype(int) - 127).max() < 40


def test_robustness_perturbations_change_images_and_keep_shape(isic_64):
    for name, perturbation in ROBUSTNESS_PERTURBATIONS.items():
        out = perturbation(isic_64[0])
        assert out.shape == isic_64[0].shape and out.dtype == np.uint8, name
        assert np.abs(out.astype(int) - isic_64[0]).mean() > 0.1, name


def test_augmentation_is_seeded_and_flips():
    images = np.random.default_rng(0).integers(0, 256, (16, 64, 64, 3), dtype=np.uint8)
    config = WangAugmentation()
    first = augment_batch(images, config, np.random.default_rng(5))
    np.testing.assert_array_equal(first, augment_batch(images, config, np.random.default_rng(5)))
    assert first.shape == images.shape
    flip_only = WangAugmentation(blur_probability=0, jpeg_probability=0, vertical_flip=False, max_translation=0)
    flipped = augment_batch(images, flip_only, np.random.default_rng(1))
    mirrored = [np.array_equal(f, i[:, ::-1]) for f, i in zip(flipped, images)]
    unchanged = [np.array_equal(f, i) for f, i in zip(flipped, images)]
    assert all(m or u for m, u in zip(mirrored, unchanged)) and any(mirrored) and any(unchanged)


def test_translations_are_whole_steps():
    # An image whose pixel value encodes its column: the column of output pixel 8 reveals the horizontal shift.
    columns = np.tile(np.arange(64, dtype=np.uint8)[None, :, None], (64, 1, 3))
    config = WangAugmentation(blur_probability=0, jpeg_probability=0, horizontal_flip=False, vertical_flip=False)
    rng = np.random.default_rng(0)
    shifts = {int(augment_batch(columns[None], config, rng)[0, 32, 8, 0]) - 8 for _ in range(40)}
    assert shifts == {-8, 0, 8}
