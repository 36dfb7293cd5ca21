"""Every feature-space metric of an audit in one call, with per-metric timings.

Pixel-space metrics (MS-SSIM diversity, paired mode, pixel neighbours and duplicates) need the images and are
called separately. Sub-seeds are derived from the one seed in a fixed order, so adding a metric later does not
change the numbers of the others.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from metrics.diversity import VendiResult, compute_vendi_score
from metrics.feature_inputs import FeatureLike
from metrics.features import FeatureSet
from metrics.frechet import (
    FdInfinityResult,
    FrechetDistanceResult,
    RealFloorResult,
    compute_fd_infinity,
    compute_frechet_distance,
    compute_real_floor,
)
from metrics.inception_score import ClassifierScoreResult, compute_inception_score, compute_mode_score
from metrics.kid import KernelDistanceResult, compute_kernel_distance
from metrics.memorization import MemorizationResult, compute_memorization
from metrics.precision_recall import PrecisionRecallResult, compute_precision_recall
from metrics.results import JsonResult

_ORDER = ("fd", "fd_infinity", "floor", "kid", "prdc", "vendi_reference", "vendi_generated", "is", "mode", "memo")


@dataclass(frozen=True)
class FeatureMetricsReport(JsonResult):
    frechet: FrechetDistanceResult
    fd_infinity: FdInfinityResult | None  # None when N is too small for a full-rank extrapolation
    real_floor: RealFloorResult
    kernel_distance: KernelDistanceResult
    precision_recall: PrecisionRecallResult
    vendi_reference: VendiResult
    vendi_generated: VendiResult
    inception_score: ClassifierScoreResult | None  # None without a FeatureSet of a known extractor
    mode_score: ClassifierScoreResult | None
    memorization: MemorizationResult
    timings_s: dict[str, float]
    seed: int


def compute_feature_metrics(
    reference: FeatureLike, generated: FeatureLike, *, seed: int, allow_rank_deficient: bool = False
) -> FeatureMetricsReport:
    seeds = dict(zip(_ORDER, np.random.SeedSequence(seed).generate_state(len(_ORDER), dtype=np.uint64).tolist()))
    timings: dict[str, float] = {}

    def timed(name: str, call):
        start = time.perf_counter()
        value = call()
        timings[name] = time.perf_counter() - start
        return value

    reference_rows = reference.features if isinstance(reference, FeatureSet) else np.asarray(reference)
    generated_rows = generated.features if isinstance(generated, FeatureSet) else np.asarray(generated)
    smallest_n, dim = min(len(reference_rows), len(generated_rows)), reference_rows.shape[1]
    frechet = timed("fd", lambda: compute_frechet_distance(
        reference, generated, seed=seeds["fd"], allow_rank_deficient=allow_rank_deficient))
    fd_infinity = None
    if smallest_n > dim + 2 or allow_rank_deficient:
        fd_infinity = timed("fd_infinity", lambda: compute_fd_infinity(
            reference, generated, seed=seeds["fd_infinity"], allow_rank_deficient=allow_rank_deficient))
    floor = timed("real_floor", lambda: compute_real_floor(reference, generated, seed=seeds["floor"]))
    kid = timed("kid", lambda: compute_kernel_distance(reference, generated, seed=seeds["kid"]))
    prdc = timed("prdc", lambda: compute_precision_recall(reference, generated, seed=seeds["prdc"]))
    vendi_reference = timed("vendi_reference", lambda: compute_vendi_score(reference, seed=seeds["vendi_reference"]))
    vendi_generated = timed("vendi_generated", lambda: compute_vendi_score(generated, seed=seeds["vendi_generated"]))
    inception = mode = None
    if isinstance(generated, FeatureSet) and isinstance(reference, FeatureSet) and generated.info is not None:
        inception = timed("inception_score", lambda: compute_inception_score(generated, seed=seeds["is"]))
        mode = timed("mode_score", lambda: compute_mode_score(reference, generated, seed=seeds["mode"]))
    memorization = timed("memorization", lambda: compute_memorization(reference, generated, seed=seeds["memo"]))
    timings["total"] = sum(timings.values())
    return FeatureMetricsReport(
        frechet, fd_infinity, floor, kid, prdc, vendi_reference, vendi_generated, inception, mode, memorization,
        timings, seed,
    )
