"""Paired mode, for image-to-image generators (super-resolution, restoration, colour standardisation, clinical ->
dermoscopic translation): each generated image names its source image (`source_file` in labels.csv), and SSIM,
MS-SSIM and PSNR are computed per pair, with their distribution and a CI for each mean.

The source is brought to the generated image's geometry: centre-cropped to its aspect ratio, then resized to its
size with PIL bicubic (antialiased). Both are compared as 8-bit RGB scaled to [0, 1].
"""
from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from metrics.image_io import ImageSource, open_rgb
from metrics.pixel_similarity import ms_ssim_pairs, ms_ssim_settings, psnr_pairs, ssim_pairs
from metrics.results import (
    ConfidenceInterval,
    InsufficientSamplesError,
    JsonResult,
    Seed,
    percentile_interval,
    resolve_seed,
)


@dataclass(frozen=True)
class DistributionSummary(JsonResult):
    mean: float
    median: float
    quantiles: dict[str, float]  # "p05", "p25", "p75", "p95"
    ci: ConfidenceInterval  # for the mean, percentile bootstrap over pairs
    n: int


@dataclass(frozen=True)
class PairedSimilarityResult(JsonResult):
    n_pairs: int
    ssim: DistributionSummary
    ms_ssim: DistributionSummary
    psnr_db: DistributionSummary  # over pairs that differ; identical pairs (PSNR = inf) are counted separately
    identical_pairs: int
    per_pair_ssim: tuple[float, ...]
    per_pair_ms_ssim: tuple[float, ...]
    per_pair_psnr_db: tuple[float | None, ...]
    settings: str
    seed: int


def read_pairs(labels_csv: str | os.PathLike, source_root: str | os.PathLike | None = None) -> tuple[list[Path], list[Path]]:
    """(generated paths, source paths) from a labels.csv with `file` and `source_file` columns; relative paths are
    resolved against the CSV's folder (generated) and `source_root` (sources; default: the CSV's folder too)."""
    folder = Path(labels_csv).parent
    root = Path(source_root) if source_root is not None else folder
    generated, sources = [], []
    with open(labels_csv, newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "source_file" not in reader.fieldnames:
            raise ValueError(f"{labels_csv} has no source_file column: paired mode needs one source per image")
        for row in reader:
            if not (row.get("source_file") or "").strip():
                raise ValueError(f"{row['file']} names no source_file")
            generated.append(folder / row["file"])
            sources.append(root / row["source_file"])
    return generated, sources


def _match_geometry(source: Image.Image, width: int, height: int) -> np.ndarray:
    src_w, src_h = source.size
    target_ratio, source_ratio = width / height, src_w / src_h
    if abs(source_ratio - target_ratio) > 1e-6:
        if source_ratio > target_ratio:
            crop_w = round(src_h * target_ratio)
            left = (src_w - crop_w) // 2
            source = source.crop((left, 0, left + crop_w, src_h))
        else:
            crop_h = round(src_w / target_ratio)
            top = (src_h - crop_h) // 2
            source = source.crop((0, top, src_w, top + crop_h))
    if source.size != (width, height):
        source = source.resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(source, dtype=np.uint8)


def _summary(values: np.ndarray, rng: np.random.Generator, confidence: float, n_bootstrap: int) -> DistributionSummary:
    draws = rng.integers(0, len(values), size=(n_bootstrap, len(values)))
    p05, p25, p75, p95 = np.percentile(values, [5, 25, 75, 95])
    return DistributionSummary(
        float(values.mean()), float(np.median(values)),
        {"p05": float(p05), "p25": float(p25), "p75": float(p75), "p95": float(p95)},
        percentile_interval(values[draws].mean(axis=1), confidence, "percentile bootstrap over pairs"),
        len(values),
    )


def compute_paired_similarity(
    generated: Sequence[ImageSource],
    sources: Sequence[ImageSource],
    *,
    seed: Seed,
    confidence: float = 0.95,
    n_bootstrap: int = 1000,
) -> PairedSimilarityResult:
    if len(generated) != len(sources):
        raise ValueError(f"{len(generated)} generated images but {len(sources)} sources")
    if len(generated) < 2:
        raise InsufficientSamplesError("paired mode needs at least 2 pairs for a distribution")
    recorded_seed, rng = resolve_seed(seed)
    ssim, ms_ssim, psnr, sizes = [], [], [], set()
    for gen_source, src_source in zip(generated, sources):
        gen_image = np.asarray(open_rgb(gen_source), dtype=np.uint8)
        height, width = gen_image.shape[:2]
        src_image = _match_geometry(open_rgb(src_source), width, height)
        settings = ms_ssim_settings(min(width, height))
        sizes.add(settings.describe())
        ssim.append(float(ssim_pairs(gen_image[None], src_image[None])[0]))
        ms_ssim.append(float(ms_ssim_pairs(gen_image[None], src_image[None], settings)[0]))
        psnr.append(float(psnr_pairs(gen_image[None], src_image[None])[0]))
    psnr_array = np.asarray(psnr)
    finite = psnr_array[np.isfinite(psnr_array)]
    return PairedSimilarityResult(
        n_pairs=len(generated),
        ssim=_summary(np.asarray(ssim), rng, confidence, n_bootstrap),
        ms_ssim=_summary(np.asarray(ms_ssim), rng, confidence, n_bootstrap),
        psnr_db=_summary(finite if len(finite) else np.array([np.inf]), rng, confidence, n_bootstrap),
        identical_pairs=int(np.sum(~np.isfinite(psnr_array))),
        per_pair_ssim=tuple(ssim),
        per_pair_ms_ssim=tuple(ms_ssim),
        per_pair_psnr_db=tuple(p if np.isfinite(p) else None for p in psnr),
        settings="SSIM 11x11 Gaussian sigma 1.5; PSNR data range 1; " + " | ".join(sorted(sizes))
        + "; source centre-cropped to the generated aspect ratio and resized to its size (PIL bicubic)",
        seed=recorded_seed,
    )
