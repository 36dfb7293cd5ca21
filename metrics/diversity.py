"""Diversity inside one set: MS-SSIM over random pairs (pixels), the Vendi score (features), LPIPS over random pairs
(only when its backbone weights are on disk).

Lower mean MS-SSIM / higher mean LPIPS / higher Vendi = more diverse. All three depend on N and image size, so
compare a generated set with the reference set at the same N and size.

Vendi score (Friedman & Dieng, "The Vendi Score: A Diversity Evaluation Metric for Machine Learning", TMLR 2023):
exp of the Shannon entropy of the eigenvalues of K/N, K the cosine-similarity kernel of the features. It runs
from 1 (all samples alike) to N (all orthogonal): an "effective number of distinct samples". Its eigenvalues are
those of X^T X / N for unit-norm rows X, so the eigenproblem is min(N, D) wide.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.linalg
import torch

from metrics.feature_inputs import FeatureLike, FeatureProvenance, as_matrix, provenance_of
from metrics.image_io import ImageSource, load_squares, shorter_side
from metrics.pixel_similarity import ms_ssim_pairs, ms_ssim_settings
from metrics.results import (
    ConfidenceInterval,
    InsufficientSamplesError,
    JsonResult,
    Seed,
    jackknife_interval,
    percentile_interval,
    resolve_seed,
    limited_blas_threads,
)

MAX_PIXEL_SIZE = 256


@dataclass(frozen=True)
class VendiResult(JsonResult):
    label: str
    value: float
    ci: ConfidenceInterval | None
    n: int
    kernel: str
    provenance: FeatureProvenance
    seed: int


@dataclass(frozen=True)
class PairDiversityResult(JsonResult):
    label: str  # "MS-SSIM between random pairs" / "LPIPS (AlexNet) between random pairs"
    available: bool
    unavailable_reason: str | None
    mean: float | None
    median: float | None
    ci: ConfidenceInterval | None  # bootstrap over pairs, for the mean
    n_images: int
    n_pairs: int
    settings: str
    seed: int


def _vendi_from_gram(gram: np.ndarray, n: int) -> float:
    eigenvalues = scipy.linalg.eigh(gram / n, eigvals_only=True, check_finite=False, driver="ev")
    eigenvalues = eigenvalues[eigenvalues > 1e-12]
    return float(np.exp(-np.sum(eigenvalues * np.log(eigenvalues))))


def _vendi_from_unit_rows(rows: np.ndarray) -> float:
    n, dim = rows.shape
    return _vendi_from_gram(rows @ rows.T if n <= dim else rows.T @ rows, n)


@limited_blas_threads
def compute_vendi_score(
    features: FeatureLike, *, seed: Seed, n_jackknife_groups: int = 10, confidence: float = 0.95
) -> VendiResult:
    """Vendi score with the cosine kernel, and a normal interval from a delete-a-group jackknife SE
    (resampling with replacement would duplicate rows and lower the score, as it biases FD)."""
    provenance = provenance_of(features)
    matrix = as_matrix(features)
    if len(matrix) < 2:
        raise InsufficientSamplesError("the Vendi score needs at least 2 samples")
    recorded_seed, rng = resolve_seed(seed)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit = matrix / np.where(norms > 0, norms, 1.0)
    value = _vendi_from_unit_rows(unit)
    ci = None
    groups = min(n_jackknife_groups, len(matrix) // 2)
    if groups >= 2:
        parts = np.array_split(rng.permutation(len(matrix)), groups)
        if len(unit) - len(parts[0]) > unit.shape[1]:  # D x D form: downdate the full second moment per group
            total = unit.T @ unit
            replicates = np.array([_vendi_from_gram(total - unit[p].T @ unit[p], len(unit) - len(p)) for p in parts])
        else:
            replicates = np.array([_vendi_from_unit_rows(np.delete(unit, p, axis=0)) for p in parts])
        _, ci = jackknife_interval(value, replicates, confidence)
    return VendiResult(
        label=provenance.label("Vendi score"), value=value, ci=ci, n=len(matrix),
        kernel="cosine similarity of features", provenance=provenance, seed=recorded_seed,
    )


def random_pairs(n: int, n_pairs: int, rng: np.random.Generator) -> np.ndarray:
    """(n_pairs, 2) index pairs i != j, drawn uniformly with replacement over ordered pairs."""
    if n < 2:
        raise InsufficientSamplesError("pairwise diversity needs at least 2 images")
    first = rng.integers(0, n, n_pairs)
    second = (first + rng.integers(1, n, n_pairs)) % n  # uniform over the other n - 1 images
    return np.stack([first, second], axis=1)


def common_pixel_size(images: Sequence[ImageSource] | np.ndarray) -> int:
    """Smallest shorter side in the set, capped at MAX_PIXEL_SIZE: images are never upsampled for pixel metrics."""
    if isinstance(images, np.ndarray):
        return int(min(images.shape[1], images.shape[2], MAX_PIXEL_SIZE))
    return int(min(min(shorter_side(image) for image in images), MAX_PIXEL_SIZE))


def _squares(images: Sequence[ImageSource] | np.ndarray, size: int) -> np.ndarray:
    if isinstance(images, np.ndarray) and images.ndim == 4 and images.shape[1] == images.shape[2] == size:
        return images
    return load_squares(list(images), size)


def _pair_summary(values: np.ndarray, rng: np.random.Generator, confidence: float, n_bootstrap: int) -> tuple:
    draws = rng.integers(0, len(values), size=(n_bootstrap, len(values)))
    ci = percentile_interval(values[draws].mean(axis=1), confidence, "percentile bootstrap over pairs")
    return float(values.mean()), float(np.median(values)), ci


def compute_ms_ssim_diversity(
    images: Sequence[ImageSource] | np.ndarray,
    *,
    seed: Seed,
    n_pairs: int = 500,
    size: int | None = None,
    confidence: float = 0.95,
    n_bootstrap: int = 1000,
) -> PairDiversityResult:
    """Mean MS-SSIM of random distinct pairs inside one set (lower = more diverse)."""
    recorded_seed, rng = resolve_seed(seed)
    size = size or common_pixel_size(images)
    settings = ms_ssim_settings(size)
    squares = _squares(images, size)
    pairs = random_pairs(len(squares), n_pairs, rng)
    values = ms_ssim_pairs(squares[pairs[:, 0]], squares[pairs[:, 1]], settings)
    mean, median, ci = _pair_summary(values, rng, confidence, n_bootstrap)
    return PairDiversityResult(
        "MS-SSIM between random pairs", True, None, mean, median, ci, len(squares), n_pairs,
        settings.describe() + f"; images centre-cropped and resized to {size} px (PIL bicubic)", recorded_seed,
    )


_LPIPS_BACKBONES = {"alex": "AlexNet_Weights", "vgg": "VGG16_Weights", "squeeze": "SqueezeNet1_1_Weights"}


def lpips_weights_path(net: str = "alex") -> Path:
    """Where torchvision looks for the LPIPS backbone weights; torchmetrics ships the linear heads itself."""
    import torchvision.models

    url = getattr(torchvision.models, _LPIPS_BACKBONES[net]).DEFAULT.url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def lpips_unavailable_reason(net: str = "alex") -> str | None:
    path = lpips_weights_path(net)
    if path.is_file():
        return None
    return f"LPIPS backbone weights for {net!r} are not on disk ({path}); LPIPS is not computed with random weights"


def compute_lpips_diversity(
    images: Sequence[ImageSource] | np.ndarray,
    *,
    seed: Seed,
    net: str = "alex",
    n_pairs: int = 200,
    size: int | None = None,
    confidence: float = 0.95,
    n_bootstrap: int = 1000,
) -> PairDiversityResult:
    """Mean LPIPS of random distinct pairs (higher = more diverse), or an 'unavailable' result saying why."""
    recorded_seed, rng = resolve_seed(seed)
    label = f"LPIPS ({net}) between random pairs"
    reason = lpips_unavailable_reason(net)
    if reason is not None:
        return PairDiversityResult(label, False, reason, None, None, None, 0, 0, "", recorded_seed)
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    size = size or common_pixel_size(images)
    squares = _squares(images, size)
    pairs = random_pairs(len(squares), n_pairs, rng)
    metric = LearnedPerceptualImagePatchSimilarity(net_type=net, reduction="mean", normalize=True).eval()
    values = []
    with torch.inference_mode():
        for i, j in pairs:
            a = torch.from_numpy(squares[i]).permute(2, 0, 1)[None].float() / 255.0
            b = torch.from_numpy(squares[j]).permute(2, 0, 1)[None].float() / 255.0
            values.append(float(metric(a, b)))
    mean, median, ci = _pair_summary(np.asarray(values), rng, confidence, n_bootstrap)
    return PairDiversityResult(
        label, True, None, mean, median, ci, len(squares), n_pairs,
        f"torchmetrics LPIPS, {net} backbone from {lpips_weights_path(net).name}, {size}-px RGB", recorded_seed,
    )
