"""A small but real detection task: real ISIC images versus images carrying a generator-like artefact.

The "synthetic" class is made from *other* ISIC images: inside one randomly placed 48x48 window the pixels are
replaced by a 2x nearest-neighbour upsampling of a 2x box-downsampled copy plus a faint checkerboard — the
footprint of transposed-convolution upsampling. The window is local on purpose, so an explanation that points
at it can be told apart from a random one.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepfake_detector import (
    DetectorConfig,
    LabelledImages,
    TrainConfig,
    split_by_group,
    standardise_images,
    WangAugmentation,
    train_detector,
)
from metrics.torch_threads import intra_op_threads

N_SOURCE_IMAGES = 240  # even positions stay real, odd positions are made synthetic
WINDOW = 48
CHECKER_AMPLITUDE = 6

TOY_MODEL = DetectorConfig(embed_dim=64, depth=2, num_heads=2, drop_path_rate=0.0)
# Blur and JPEG as in the default, milder; no flips or shifts: they invert the checkerboard's sign, and a 2-block
# ViT needs far more than the few seconds a unit test has to learn a sign-invariant detector (measured: val AUC
# stayed ~0.5 for 12 epochs with flips or shifts alone, ~1.0 with blur + JPEG only).
TOY_AUGMENTATION = WangAugmentation(
    blur_sigma_range=(0.0, 0.5),
    jpeg_quality_range=(70, 100),
    horizontal_flip=False,
    vertical_flip=False,
    max_translation=0,
)
TOY_TRAINING = TrainConfig(
    model=TOY_MODEL,
    augmentation=TOY_AUGMENTATION,
    batch_size=32,
    learning_rate=1e-3,
    max_epochs=12,
    patience=4,
    num_threads=1,
)


def add_generator_artefact(images: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-upsampled, checkerboarded WINDOW x WINDOW patch at a random even position of each uint8 NHWC image.

    Returns the images and each window's (top, left).
    """
    out = images.astype(np.int16).copy()
    yy, xx = np.mgrid[0:WINDOW, 0:WINDOW]
    checker = np.where((yy + xx) % 2 == 0, CHECKER_AMPLITUDE, -CHECKER_AMPLITUDE)[:, :, None]
    size = images.shape[1]
    positions = 2 * rng.integers(0, (size - WINDOW) // 2 + 1, size=(len(images), 2))
    for image, (top, left) in zip(out, positions):
        window = image[top : top + WINDOW, left : left + WINDOW]
        small = window.reshape(WINDOW // 2, 2, WINDOW // 2, 2, 3).mean(axis=(1, 3))
        upsampled = np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)
        image[top : top + WINDOW, left : left + WINDOW] = np.rint(upsampled) + checker
    return np.clip(out, 0, 255).astype(np.uint8), positions


@pytest.fixture(autouse=True)
def single_torch_thread():
    # The CI/dev machine is shared; with its cores busy, two OpenMP threads ran these small models ~6x slower
    # than one. Restored after each test so other packages' tests keep torch's default.
    with intra_op_threads(1):
        yield


@pytest.fixture(scope="session")
def isic_paths(isic_dir: Path) -> list[Path]:
    files = pd.read_csv(isic_dir / "labels.csv")["file"].tolist()[:N_SOURCE_IMAGES]
    return [isic_dir / name for name in files]


@pytest.fixture(scope="session")
def isic_64(isic_paths: list[Path]) -> np.ndarray:
    return standardise_images(isic_paths)


@pytest.fixture(scope="session")
def toy_dataset(isic_64: np.ndarray) -> LabelledImages:
    # Interleaved, not first/second half: the archive's order is not random, and a split by position would let the
    # detector learn which part of the archive an image came from.
    synthetic, _ = add_generator_artefact(isic_64[1::2], np.random.default_rng(1))
    return LabelledImages.from_classes(isic_64[0::2], synthetic)


@pytest.fixture(scope="session")
def toy_windows(isic_64: np.ndarray) -> np.ndarray:
    """(top, left) of the artefact window of each synthetic toy image, in dataset order (same seed as above)."""
    return add_generator_artefact(isic_64[1::2], np.random.default_rng(1))[1]


@pytest.fixture(scope="session")
def toy_split(toy_dataset: LabelledImages):
    return split_by_group(toy_dataset.labels, toy_dataset.groups, fractions=(0.6, 0.2, 0.2), seed=0)


@pytest.fixture(scope="session")
def toy_training(toy_dataset, toy_split):
    return train_detector(toy_dataset, toy_split, TOY_TRAINING, manifests={"toy": "isic-uda1-first-240"})
