"""Session fixtures for the metrics tests: real image subsets and their features, extracted once per session.

Subset sizes are the smallest that still prove the claims (see each test); all features go through one
session-wide disk cache, so a test that asks for the same images again costs nothing.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from metrics.features import FeatureSet, extract_features, extract_features_from_arrays, get_extractor
from metrics.image_io import load_squares

N_REFERENCE = 180  # isic-uda1 reference rows
N_HELD_OUT = 60  # further isic-uda1 rows, disjoint from the reference: the "generated" set of the ordering test
N_PAD = 120


def labelled_paths(folder: Path) -> list[Path]:
    with open(folder / "labels.csv", newline="") as handle:
        return [folder / row["file"] for row in csv.DictReader(handle)]


def labelled_rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "labels.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="session")
def feature_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("feature-cache")


@pytest.fixture(scope="session")
def effnet():
    return get_extractor("effnet-lite0-imagenet")


@pytest.fixture(scope="session")
def isic_paths(isic_dir: Path) -> list[Path]:
    return labelled_paths(isic_dir)


@pytest.fixture(scope="session")
def pad_paths(pad_dir: Path) -> list[Path]:
    return labelled_paths(pad_dir)


@pytest.fixture(scope="session")
def isic_reference(isic_paths: list[Path], feature_cache: Path) -> FeatureSet:
    return extract_features(isic_paths[:N_REFERENCE], cache_dir=feature_cache)


@pytest.fixture(scope="session")
def isic_held_out_squares(isic_paths: list[Path]) -> np.ndarray:
    """The held-out images at the extractor's input size (224 px), as the network would see them."""
    return load_squares(isic_paths[N_REFERENCE : N_REFERENCE + N_HELD_OUT], 224)


@pytest.fixture(scope="session")
def isic_held_out(isic_held_out_squares: np.ndarray, feature_cache: Path) -> FeatureSet:
    return extract_features_from_arrays(isic_held_out_squares, cache_dir=feature_cache)


@pytest.fixture(scope="session")
def pad_features(pad_paths: list[Path], feature_cache: Path) -> FeatureSet:
    return extract_features(pad_paths[:N_PAD], cache_dir=feature_cache)


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(a).filter(ImageFilter.GaussianBlur(sigma))) for a in images])


def jpeg(images: np.ndarray, quality: int) -> np.ndarray:
    out = []
    for array in images:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
        out.append(np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")))
    return np.stack(out)


def flip_and_crop(images: np.ndarray, crop_fraction: float = 0.06) -> np.ndarray:
    """Mirror left-right and cut `crop_fraction` off each border, back at the original size."""
    out = []
    for array in images:
        image = Image.fromarray(array[:, ::-1].copy())
        width, height = image.size
        dx, dy = round(width * crop_fraction), round(height * crop_fraction)
        out.append(np.asarray(image.crop((dx, dy, width - dx, height - dy)).resize((width, height), Image.BICUBIC)))
    return np.stack(out)
