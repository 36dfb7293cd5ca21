"""Exact and near duplicates between (or inside) image sets, from a pixel view of each image.

Exact: identical decoded RGB pixels (so a JPEG re-saved losslessly as PNG, or two files with different names,
still match; byte-level hashing would miss the first). Near: perceptual hash (imagehash.phash, 64 bits) within
`phash_max_distance` bits AND SSIM >= `ssim_threshold` on `view_size`-px thumbnails: the hash finds candidates
cheaply, SSIM confirms them.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import imagehash
import numpy as np

from metrics.image_io import ImageSource, iterate_batches, open_rgb, resize_center_crop
from metrics.pixel_similarity import ssim_pairs
from metrics.results import JsonResult

DEFAULT_VIEW_SIZE = 64
DEFAULT_PHASH_MAX_DISTANCE = 10
DEFAULT_SSIM_THRESHOLD = 0.95


@dataclass(frozen=True)
class PixelViews:
    thumbnails: np.ndarray  # uint8 (N, S, S, 3), centre-cropped and resized (PIL bicubic)
    pixel_sha256: tuple[str, ...]  # hash of the decoded full-resolution RGB pixels and their shape
    phashes: np.ndarray  # uint64 (N,)

    def __len__(self) -> int:
        return len(self.pixel_sha256)


def _view(source: ImageSource, size: int) -> tuple[np.ndarray, str, int]:
    image = open_rgb(source)
    pixels = np.asarray(image, dtype=np.uint8)
    digest = hashlib.sha256(f"{pixels.shape}".encode())
    digest.update(np.ascontiguousarray(pixels).tobytes())
    phash = int(str(imagehash.phash(image)), 16)
    return resize_center_crop(image, size), digest.hexdigest(), phash


def load_pixel_views(images: Sequence[ImageSource] | np.ndarray, size: int = DEFAULT_VIEW_SIZE) -> PixelViews:
    sources = list(images)
    thumbnails = np.empty((len(sources), size, size, 3), dtype=np.uint8)
    hashes: list[str] = []
    phashes = np.empty(len(sources), dtype=np.uint64)
    for start, batch in iterate_batches(sources, lambda s: _view(s, size), batch_size=64):
        for offset, (thumbnail, digest, phash) in enumerate(batch):
            thumbnails[start + offset] = thumbnail
            hashes.append(digest)
            phashes[start + offset] = phash
    return PixelViews(thumbnails, tuple(hashes), phashes)


def hamming_distances(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(len(first), len(second)) bit distances between 64-bit hashes."""
    return np.bitwise_count(first[:, None] ^ second[None, :]).astype(np.int64)


@dataclass(frozen=True)
class DuplicatePair(JsonResult):
    first_index: int  # in the generated (or only) set
    second_index: int  # in the reference set (or the same set)
    kind: str  # "exact" or "near"
    phash_distance: int
    ssim: float


def find_duplicate_pairs(
    first: PixelViews,
    second: PixelViews | None = None,
    *,
    phash_max_distance: int = DEFAULT_PHASH_MAX_DISTANCE,
    ssim_threshold: float = DEFAULT_SSIM_THRESHOLD,
    extra_candidates: np.ndarray | None = None,
) -> list[DuplicatePair]:
    """Exact and near duplicate pairs between two sets, or inside one set (second=None, each pair once).

    `extra_candidates` ((M, 2) index pairs, e.g. nearest neighbours in feature or pixel space) are checked with
    SSIM as well, so a near copy whose hash drifted past the threshold is still caught.
    """
    within = second is None
    second = first if second is None else second
    distances = hamming_distances(first.phashes, second.phashes)
    candidate_mask = distances <= phash_max_distance
    if within:
        candidate_mask &= np.triu(np.ones_like(candidate_mask, dtype=bool), k=1)
    candidates = {tuple(pair) for pair in np.argwhere(candidate_mask)}
    if extra_candidates is not None:
        candidates |= {(int(i), int(j)) for i, j in extra_candidates if not (within and i >= j)}
    exact_index: dict[str, list[int]] = {}
    for j, digest in enumerate(second.pixel_sha256):
        exact_index.setdefault(digest, []).append(j)
    for i, digest in enumerate(first.pixel_sha256):
        candidates |= {(i, j) for j in exact_index.get(digest, []) if not (within and j <= i)}
    if not candidates:
        return []
    ordered = sorted(candidates)
    rows = np.array([i for i, _ in ordered])
    cols = np.array([j for _, j in ordered])
    ssim = ssim_pairs(first.thumbnails[rows], second.thumbnails[cols])
    pairs = []
    for (i, j), value in zip(ordered, ssim):
        if first.pixel_sha256[i] == second.pixel_sha256[j]:
            pairs.append(DuplicatePair(int(i), int(j), "exact", int(distances[i, j]), float(value)))
        elif value >= ssim_threshold:
            pairs.append(DuplicatePair(int(i), int(j), "near", int(distances[i, j]), float(value)))
    return pairs
