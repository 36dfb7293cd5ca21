"""Memorization / privacy: is a generated image a copy of a training (reference) image?

For each generated image: its nearest reference image in feature space and, when images are given, in pixel space
(32-px RGB thumbnails, L2). A generated image is a copy candidate by the authenticity rule of Alaa et al., "How
Faithful is your Synthetic Data?" (ICML 2022, AuthPct): it is no farther from its nearest reference image than
that reference image is from its own nearest other reference image. Exact and near duplicates (duplicates.py)
are flagged as well. The result lists every flagged (generated, reference) pair so a report can show them side
by side.

The rule is not a proof of copying: measured here on real images the generator never saw (60 held-out isic-uda1
images against 180 others, EfficientNet-Lite0 features), 23% met the feature-space rule and 17% the pixel-space
one. So every result carries the same rule applied to real held-out images (the reference split in halves), and
the pixel-space rule is reported but not counted as memorization; duplicates (exact pixels, or hash + SSIM >= 0.95)
are.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from metrics.duplicates import (
    DEFAULT_PHASH_MAX_DISTANCE,
    DEFAULT_SSIM_THRESHOLD,
    DuplicatePair,
    PixelViews,
    find_duplicate_pairs,
    load_pixel_views,
)
from metrics.feature_inputs import FeatureLike, FeatureProvenance, as_matrix, common_provenance
from metrics.features import FeatureSet
from metrics.image_io import ImageSource
from metrics.precision_recall import pairwise_distances, self_distances
from metrics.results import (
    ConfidenceInterval,
    InsufficientSamplesError,
    JsonResult,
    Seed,
    limited_blas_threads,
    resolve_seed,
    wilson_interval,
)

PIXEL_NN_SIZE = 32


@dataclass(frozen=True)
class FlaggedPair(JsonResult):
    generated_index: int
    reference_index: int
    generated_key: str | None
    reference_key: str | None
    reasons: tuple[str, ...]  # "authenticity-features", "exact-duplicate", "near-duplicate"
    feature_distance: float
    reference_nn_feature_distance: float  # the reference image's distance to its own nearest other reference
    ssim: float | None
    phash_distance: int | None


@dataclass(frozen=True)
class MemorizationResult(JsonResult):
    label: str
    n_generated: int
    n_reference: int
    memorized_fraction: float  # flagged by any rule
    memorized_ci: ConfidenceInterval
    feature_copy_fraction: float  # AuthPct rule in feature space (1 - authenticity)
    real_baseline_copy_fraction: float  # same rule, one half of the reference against the other half
    real_baseline_n: int  # images per half
    pixel_copy_fraction: float | None  # AuthPct rule in pixel space, when images were given (not counted)
    exact_duplicates: int
    near_duplicates: int
    nearest_feature_index: tuple[int, ...]
    nearest_feature_distance: tuple[float, ...]
    nearest_pixel_index: tuple[int, ...] | None
    nearest_pixel_distance: tuple[float, ...] | None
    flagged: tuple[FlaggedPair, ...]  # most suspicious first
    rule: str
    ssim_threshold: float
    phash_max_distance: int
    provenance: FeatureProvenance
    seed: int


def _nearest(cross: np.ndarray, reference_self: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest reference per generated row, its distance, and every reference's distance to its nearest other."""
    np.fill_diagonal(reference_self, np.inf)
    index = cross.argmin(axis=1)
    return index, cross[np.arange(len(cross)), index], reference_self.min(axis=1)


def _pixel_vectors(views: PixelViews) -> np.ndarray:
    thumbnails = views.thumbnails.astype(np.float32) / 255.0
    size = thumbnails.shape[1]
    factor = max(1, size // PIXEL_NN_SIZE)
    if factor > 1:  # box-average to 32 px: L2 over 3k values instead of 12k, same neighbours in practice
        cropped = thumbnails[:, : factor * (size // factor), : factor * (size // factor)]
        thumbnails = cropped.reshape(len(cropped), size // factor, factor, size // factor, factor, 3).mean(axis=(2, 4))
    return thumbnails.reshape(len(thumbnails), -1).astype(np.float64)


@limited_blas_threads
def compute_memorization(
    reference: FeatureLike,
    generated: FeatureLike,
    *,
    reference_images: Sequence[ImageSource] | PixelViews | None = None,
    generated_images: Sequence[ImageSource] | PixelViews | None = None,
    seed: Seed,
    ssim_threshold: float = DEFAULT_SSIM_THRESHOLD,
    phash_max_distance: int = DEFAULT_PHASH_MAX_DISTANCE,
    confidence: float = 0.95,
) -> MemorizationResult:
    """Copy detection of `generated` against `reference` (the generator's training images, ideally).

    Images (paths, uint8 arrays or precomputed PixelViews, in the same order as the features) enable the
    pixel-space neighbour and the duplicate checks; without them only the feature-space rule runs.
    """
    provenance = common_provenance(reference, generated)
    ref, gen = as_matrix(reference), as_matrix(generated)
    if len(ref) < 4 or len(gen) < 1:
        raise InsufficientSamplesError("memorization needs at least 4 reference and 1 generated image")
    cross = pairwise_distances(gen, ref)
    reference_self = self_distances(ref)
    half = len(ref) // 2
    recorded_seed, rng = resolve_seed(seed)
    order = rng.permutation(len(ref))
    known, novel = order[:half], order[half : 2 * half]
    baseline_index, baseline_distance, baseline_nn = _nearest(
        reference_self[np.ix_(novel, known)], reference_self[np.ix_(known, known)]
    )
    real_baseline = float(np.mean(baseline_distance <= baseline_nn[baseline_index]))
    feature_index, feature_distance, reference_nn = _nearest(cross, reference_self)
    feature_copy = feature_distance <= reference_nn[feature_index]
    reasons: list[set[str]] = [{"authenticity-features"} if flag else set() for flag in feature_copy]
    partner = feature_index.copy()
    pixel_index = pixel_distance = None
    pixel_copy_fraction = None
    duplicates: list[DuplicatePair] = []
    if (reference_images is None) != (generated_images is None):
        raise ValueError("give both reference_images and generated_images, or neither")
    if reference_images is not None:
        ref_views = reference_images if isinstance(reference_images, PixelViews) else load_pixel_views(reference_images)
        gen_views = generated_images if isinstance(generated_images, PixelViews) else load_pixel_views(generated_images)
        if len(ref_views) != len(ref) or len(gen_views) != len(gen):
            raise ValueError("images and features must describe the same images in the same order")
        ref_pixels, gen_pixels = _pixel_vectors(ref_views), _pixel_vectors(gen_views)
        pixel_index, pixel_distance, pixel_reference_nn = _nearest(
            pairwise_distances(gen_pixels, ref_pixels), self_distances(ref_pixels)
        )
        pixel_copy_fraction = float(np.mean(pixel_distance <= pixel_reference_nn[pixel_index]))
        nearest_pairs = np.concatenate(
            [np.stack([np.arange(len(gen)), feature_index], 1), np.stack([np.arange(len(gen)), pixel_index], 1)]
        )
        duplicates = find_duplicate_pairs(
            gen_views, ref_views, phash_max_distance=phash_max_distance, ssim_threshold=ssim_threshold,
            extra_candidates=nearest_pairs,
        )
    duplicate_of: dict[int, DuplicatePair] = {}
    for pair in sorted(duplicates, key=lambda p: (p.kind != "exact", -p.ssim)):
        duplicate_of.setdefault(pair.first_index, pair)
    for row, pair in duplicate_of.items():
        reasons[row].add(f"{pair.kind}-duplicate")
        partner[row] = pair.second_index
    flagged = []
    for row in np.flatnonzero([bool(r) for r in reasons]):
        j = int(partner[row])
        pair = duplicate_of.get(int(row))
        flagged.append(
            FlaggedPair(
                generated_index=int(row),
                reference_index=j,
                generated_key=generated.keys[row] if isinstance(generated, FeatureSet) else None,
                reference_key=reference.keys[j] if isinstance(reference, FeatureSet) else None,
                reasons=tuple(sorted(reasons[row])),
                feature_distance=float(cross[row, j]),
                reference_nn_feature_distance=float(reference_nn[j]),
                ssim=pair.ssim if pair and pair.second_index == j else None,
                phash_distance=pair.phash_distance if pair and pair.second_index == j else None,
            )
        )
    flagged.sort(key=lambda f: f.feature_distance / max(f.reference_nn_feature_distance, 1e-12))
    memorized = sum(1 for r in reasons if r)
    return MemorizationResult(
        label=provenance.label("Memorization"),
        n_generated=len(gen),
        n_reference=len(ref),
        memorized_fraction=memorized / len(gen),
        memorized_ci=wilson_interval(memorized, len(gen), confidence),
        feature_copy_fraction=float(feature_copy.mean()),
        real_baseline_copy_fraction=real_baseline,
        real_baseline_n=half,
        pixel_copy_fraction=pixel_copy_fraction,
        exact_duplicates=len({p.first_index for p in duplicates if p.kind == "exact"}),
        near_duplicates=len({p.first_index for p in duplicates if p.kind == "near"}),
        nearest_feature_index=tuple(int(i) for i in feature_index),
        nearest_feature_distance=tuple(float(d) for d in feature_distance),
        nearest_pixel_index=tuple(int(i) for i in pixel_index) if pixel_index is not None else None,
        nearest_pixel_distance=tuple(float(d) for d in pixel_distance) if pixel_distance is not None else None,
        flagged=tuple(flagged),
        rule=(
            "copy candidate when d(generated, nearest reference) <= d(that reference, its nearest other reference) "
            "in feature space (AuthPct, Alaa et al. 2022); or identical decoded pixels; or (perceptual-hash distance "
            f"<= {phash_max_distance} bits or nearest neighbour in features / 32-px pixels) with SSIM >= "
            f"{ssim_threshold} on 64-px thumbnails"
        ),
        ssim_threshold=ssim_threshold,
        phash_max_distance=phash_max_distance,
        provenance=provenance,
        seed=recorded_seed,
    )
