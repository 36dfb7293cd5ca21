"""Feature sets: images in, (N, D) float32 features out, cached on disk by image content.

    >>> real = extract_features(paths_of_reference, cache_dir="var/feature-cache")
    >>> fake = extract_features_from_arrays(gan_samples_uint8_nhwc, cache_dir="var/feature-cache")
    >>> compute_frechet_distance(real, fake, seed=0)

Each image is decoded and resized exactly once by `metrics.image_io` (the extractor's named preprocessing), on a
background thread while the network works on the previous batch; only images whose content hash is not in the
cache reach the network.

A feature is a function of the image's content alone: the same bits whatever the batch size, the other images in
the call, their order, the torch thread count or the process (see metrics.extractors, "Numerics"). What can still
change bits -- the precision, the CPU's kernel family, the torch version -- is the extractor's `numerics_id`: it is
recorded in every FeatureSet and is part of the cache key, so features computed differently are never mixed.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from metrics.extractors import (
    DEFAULT_EXTRACTOR,
    EXTRACTOR_INFOS,
    ExtractorInfo,
    ExtractorUnavailable,
    FeatureExtractor,
    available_extractors,
    bf16_unavailable_reason,
    get_extractor,
    resolve_precision,
)
from metrics.feature_cache import FeatureCache
from metrics.image_io import iterate_batches, load_square, sha256_array, sha256_file

__all__ = [
    "DEFAULT_EXTRACTOR",
    "ExtractorUnavailable",
    "FeatureExtractor",
    "FeatureSet",
    "available_extractors",
    "bf16_unavailable_reason",
    "extract_features",
    "extract_features_from_arrays",
    "get_extractor",
    "resolve_precision",
]

Progress = Callable[[int, int], None]


@dataclass(frozen=True, eq=False)
class FeatureSet:
    features: np.ndarray  # (N, D) float32, row i belongs to keys[i]
    keys: tuple[str, ...]  # content SHA-256 hex of each image (file bytes, or array bytes for in-memory images)
    extractor_id: str
    preprocessing_id: str
    weights_sha256: str
    precision: str = "fp32"  # "fp32" or "bf16": sets of different precision are never compared
    numerics: str = "unspecified"  # precision, kernel family, torch version: same numerics, same bits

    def __post_init__(self) -> None:
        if self.features.ndim != 2 or self.features.shape[0] != len(self.keys):
            raise ValueError(f"features {self.features.shape} do not match {len(self.keys)} keys")

    @property
    def n(self) -> int:
        return int(self.features.shape[0])

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    @property
    def info(self) -> ExtractorInfo | None:
        return EXTRACTOR_INFOS.get(self.extractor_id)

    def select(self, indices: Sequence[int] | np.ndarray) -> FeatureSet:
        """The rows at `indices`, in that order (a subgroup, a split, a subsample)."""
        index = np.asarray(indices, dtype=np.int64)
        return FeatureSet(
            self.features[index], tuple(self.keys[i] for i in index), self.extractor_id, self.preprocessing_id,
            self.weights_sha256, self.precision, self.numerics,
        )

    def provenance(self) -> dict[str, object]:
        info = self.info
        return {
            "extractor_id": self.extractor_id,
            "extractor": info.display_name if info else self.extractor_id,
            "preprocessing_id": self.preprocessing_id,
            "weights_sha256": self.weights_sha256,
            "precision": self.precision,
            "numerics": self.numerics,
            "n": self.n,
            "feature_dim": self.dim,
        }


def _extract(
    sources: Sequence[object],
    keys: Sequence[str],
    extractor: FeatureExtractor,
    cache_dir: str | os.PathLike | None,
    batch_size: int,
    progress: Progress | None,
) -> FeatureSet:
    info = extractor.info
    features = np.empty((len(sources), info.feature_dim), dtype=np.float32)
    # The numerics id joins the preprocessing id in the cache key: an entry computed with another precision, kernel
    # family or torch version (or by the batch-dependent convolutions before it) is a miss, never a silent mix.
    cache = (
        FeatureCache(cache_dir, info.extractor_id, f"{info.preprocessing_id} | {extractor.numerics_id}",
                     extractor.weights_sha256)
        if cache_dir is not None
        else None
    )
    missing: list[int] = []
    first_row_of_key: dict[str, int] = {}
    duplicate_rows: list[tuple[int, int]] = []  # identical content inside one call is embedded once
    for row, key in enumerate(keys):
        cached = cache.get(key) if cache is not None else None
        if cached is not None and cached.shape == (info.feature_dim,):
            features[row] = cached
        elif key in first_row_of_key:
            duplicate_rows.append((row, first_row_of_key[key]))
        else:
            first_row_of_key[key] = row
            missing.append(row)
    done = len(sources) - len(missing)
    if progress is not None:
        progress(done, len(sources))
    todo = [sources[row] for row in missing]
    for start, batch in iterate_batches(todo, lambda s: load_square(s, info.input_size), batch_size=batch_size):
        embedded = extractor.embed_batch(np.stack(batch))
        rows = missing[start : start + len(batch)]
        features[rows] = embedded
        if cache is not None:
            for row, vector in zip(rows, embedded):
                cache.put(keys[row], vector)
        done += len(batch)
        if progress is not None:
            progress(done, len(sources))
    for row, original in duplicate_rows:
        features[row] = features[original]
    return FeatureSet(features, tuple(keys), info.extractor_id, info.preprocessing_id, extractor.weights_sha256,
                      extractor.precision, extractor.numerics_id)


def extract_features(
    images: Sequence[str | os.PathLike],
    extractor_id: str = DEFAULT_EXTRACTOR,
    *,
    keys: Sequence[str] | None = None,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 64,
    progress: Progress | None = None,
    precision: str = "fp32",
) -> FeatureSet:
    """Features of image files. `keys` (content SHA-256 of each file, e.g. from the database) skips re-hashing.
    `batch_size` is how many images are decoded ahead; it does not change a bit of the result."""
    if keys is not None and len(keys) != len(images):
        raise ValueError(f"{len(keys)} keys for {len(images)} images")
    extractor = get_extractor(extractor_id, precision)
    content_keys = list(keys) if keys is not None else [sha256_file(path) for path in images]
    return _extract(list(images), content_keys, extractor, cache_dir, batch_size, progress)


def extract_features_from_arrays(
    images: np.ndarray | Sequence[np.ndarray],
    extractor_id: str = DEFAULT_EXTRACTOR,
    *,
    keys: Sequence[str] | None = None,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 64,
    progress: Progress | None = None,
    precision: str = "fp32",
) -> FeatureSet:
    """Features of in-memory uint8 RGB images (N, H, W, 3), e.g. GAN samples; same preprocessing as files."""
    arrays = list(images)
    if keys is not None and len(keys) != len(arrays):
        raise ValueError(f"{len(keys)} keys for {len(arrays)} images")
    extractor = get_extractor(extractor_id, precision)
    content_keys = list(keys) if keys is not None else [sha256_array(array) for array in arrays]
    return _extract(arrays, content_keys, extractor, cache_dir, batch_size, progress)
