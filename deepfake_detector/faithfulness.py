"""Faithfulness of the explanations, measured with ROAD (Rong et al. 2022) as implemented in pytorch-grad-cam.

``ROADCombined`` imputes away the most-relevant and the least-relevant pixels at several percentiles and returns
(score drop when removing least-relevant - score drop when removing most-relevant) / 2 of the explained target:
higher means the map points at what the model really uses. A single RandomCAM run is noisy (seed to seed its
score moved by about half a logit on the prototype), so the baseline is the mean over several seeds and the
comparison is a bootstrap interval, over images, of (method - mean random).

The imputation is pytorch-grad-cam's noisy linear imputer (each removed pixel the weighted mean of its 8 neighbours,
plus noise), with its equation system assembled in one vectorised pass instead of element by element into a
`lil_matrix`, and solved by a symmetric-mode LU (the system is symmetric): the same equations (tested exactly), the
same noise draws, imputed images within 1e-6 of the library's and ROAD scores within 1e-5 (tested); the audit's
explanations stage went from 41 to 15 s with it (benchmarks/audit.py). The rest -- percentile masks, MoRF/LeRF,
averaging -- is the library's own classes.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
from pytorch_grad_cam.metrics.perturbation_confidence import (
    AveragerAcrossThresholds,
    PerturbationConfidenceMetric,
    RemoveLeastRelevantFirst,
    RemoveMostRelevantFirst,
)
from pytorch_grad_cam.metrics.road import neighbors_weights
from scipy.sparse import csc_matrix
from scipy.sparse.linalg import splu

from deepfake_detector.explain import CamMethod, CamTarget, cams_of_encoded, encoded_inputs, targets_for
from deepfake_detector.model import Detector, images_to_tensor

DEFAULT_PERCENTILES = (10, 20, 30, 40, 50, 60, 70, 80, 90)


@dataclass(frozen=True)
class RoadResult:
    method: str
    target: str
    n_images: int
    percentiles: list[int]
    method_mean: float
    random_mean: float  # over seeds and images
    random_seed_means: list[float]
    difference_mean: float  # method - random, per image, averaged
    difference_ci_low: float
    difference_ci_high: float
    method_beats_random: bool  # the whole 95 % interval of the difference is above zero
    share_all_zero_maps: float  # of the method's maps; an all-zero map removes nothing and scores 0
    seconds_per_image: float  # ROAD of the method alone


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    # RandomCAM draws from numpy's global RNG and the ROAD imputer from torch's; seed both, then restore them.
    numpy_state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        np.random.seed(seed)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            np.random.set_state(numpy_state)


def linear_imputation_system(mask: np.ndarray, image: np.ndarray) -> tuple[csc_matrix, np.ndarray, np.ndarray]:
    """The noisy linear imputer's equations for the pixels where `mask` is 0: A x = b (one column per channel).

    Row i says: -(sum of in-image neighbour weights) x_i + sum over removed neighbours w x_j = -sum over kept
    neighbours w value_j. Returns (A, b, flat indices of the removed pixels)."""
    height, width = mask.shape
    kept = mask.reshape(-1) > 0.5
    flat = image.reshape(image.shape[0], -1)
    removed = np.flatnonzero(~kept)
    n = len(removed)
    variable = np.zeros(height * width, dtype=np.int64)
    variable[removed] = np.arange(n)
    row, col = removed // width, removed % width
    b = np.zeros((n, image.shape[0]))
    weight_sum = np.ones(n)
    rows, cols, values = [np.arange(n)], [np.arange(n)], []
    for (d_row, d_col), weight in neighbors_weights:
        r, c = row + d_row, col + d_col
        inside = (r >= 0) & (c >= 0) & (r < height) & (c < width)
        weight_sum[~inside] -= weight
        equations, neighbours = np.flatnonzero(inside), (r * width + c)[inside]
        known = kept[neighbours]
        b[equations[known], :] -= weight * flat[:, neighbours[known]].T
        rows.append(equations[~known])
        cols.append(variable[neighbours[~known]])
        values.append(np.full(int((~known).sum()), weight))
    values.insert(0, -weight_sum)
    A = csc_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    return A, b, removed


class LinearImputer:
    """Drop-in for pytorch_grad_cam.metrics.road.NoisyLinearImputer (same system, same noise from torch's RNG)."""

    def __init__(self, noise: float = 0.01) -> None:
        self.noise = noise

    def __call__(self, img: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        A, b, removed = linear_imputation_system(mask.numpy(), img.numpy())
        flat = img.reshape(img.shape[0], -1).clone()
        if len(removed):
            lu = splu(A, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
            solution = torch.tensor(lu.solve(b), dtype=torch.float)
            flat[:, removed] = solution.t() + self.noise * torch.randn_like(solution.t())
        return flat.reshape_as(img)


class RoadCombined:
    """pytorch-grad-cam's ROADCombined with `LinearImputer`: (LeRF drop - MoRF drop) / 2, averaged over percentiles."""

    def __init__(self, percentiles: Sequence[int]) -> None:
        imputer = LinearImputer()
        self.lerf = AveragerAcrossThresholds(
            lambda p: PerturbationConfidenceMetric(RemoveLeastRelevantFirst(p, imputer)), list(percentiles))
        self.morf = AveragerAcrossThresholds(
            lambda p: PerturbationConfidenceMetric(RemoveMostRelevantFirst(p, imputer)), list(percentiles))

    def __call__(self, input_tensor: torch.Tensor, cams: np.ndarray, targets: list, model: torch.nn.Module) -> np.ndarray:
        return (self.lerf(input_tensor, cams, targets, model) - self.morf(input_tensor, cams, targets, model)) / 2


def road_scores(
    detector: Detector,
    encoded: np.ndarray,
    maps: np.ndarray,
    targets: list,
    percentiles: Sequence[int] = DEFAULT_PERCENTILES,
    batch_size: int = 32,
) -> np.ndarray:
    """Per-image ROADCombined scores (float64) for maps of images that went through both preprocessing steps."""
    road = RoadCombined(percentiles)
    scores = []
    for start in range(0, len(encoded), batch_size):
        batch = images_to_tensor(encoded[start : start + batch_size], detector.device)
        scores.append(
            road(batch, maps[start : start + batch_size], targets[start : start + batch_size], detector.model)
        )
    return np.concatenate(scores).astype(np.float64)


@dataclass(frozen=True)
class RoadImageScores:
    """Per-image ROAD scores, so that image chunks can be scored in separate processes and pooled."""

    method_scores: np.ndarray  # float64 N
    random_scores: np.ndarray  # float64 seeds x N
    all_zero: np.ndarray  # bool N: the method's map was all zero
    seconds: float  # spent on the method's ROAD alone

    def subset(self, mask: np.ndarray) -> "RoadImageScores":
        """The scores of the images where `mask` is true (the method's seconds are shared out by image count)."""
        mask = np.asarray(mask, dtype=bool)
        share = mask.sum() / max(len(mask), 1)
        return RoadImageScores(self.method_scores[mask], self.random_scores[:, mask], self.all_zero[mask],
                               self.seconds * share)

    @staticmethod
    def concatenate(parts: Sequence["RoadImageScores"]) -> "RoadImageScores":
        return RoadImageScores(
            np.concatenate([p.method_scores for p in parts]),
            np.concatenate([p.random_scores for p in parts], axis=1),
            np.concatenate([p.all_zero for p in parts]),
            float(sum(p.seconds for p in parts)),
        )


def road_image_scores(
    detector: Detector,
    images: np.ndarray,
    *,
    method: CamMethod = "gradcam",
    target: CamTarget = "synthetic",
    random_seeds: Sequence[int] = (0, 1, 2, 3, 4),
    percentiles: Sequence[int] = DEFAULT_PERCENTILES,
    seed: int = 0,
) -> RoadImageScores:
    """ROAD of ``method`` and of RandomCAM (one row per seed) for each of the uint8 NHWC images."""
    if len(images) == 0 or not random_seeds:
        raise ValueError("need images and at least one RandomCAM seed")
    encoded = encoded_inputs(detector, images)
    explained = cams_of_encoded(detector, encoded, method, target)
    targets = targets_for(explained.logits, target)

    started = time.perf_counter()
    with _seeded(seed):
        method_scores = road_scores(detector, encoded, explained.maps, targets, percentiles)
    seconds = time.perf_counter() - started

    random_scores = []
    for random_seed in random_seeds:
        with _seeded(random_seed):
            random_maps = cams_of_encoded(detector, encoded, "random", target).maps
            random_scores.append(road_scores(detector, encoded, random_maps, targets, percentiles))
    return RoadImageScores(method_scores, np.stack(random_scores), explained.all_zero, seconds)


def summarise_road(
    scores: RoadImageScores,
    *,
    method: str,
    target: str,
    percentiles: Sequence[int] = DEFAULT_PERCENTILES,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> RoadResult:
    """Method vs the mean over RandomCAM seeds, with a percentile bootstrap over images of the difference."""
    differences = scores.method_scores - scores.random_scores.mean(axis=0)
    rng = np.random.default_rng(seed)
    resampled = rng.integers(0, len(differences), size=(n_bootstrap, len(differences)))
    low, high = np.quantile(differences[resampled].mean(axis=1), [0.025, 0.975])
    return RoadResult(
        method=method,
        target=target,
        n_images=int(len(differences)),
        percentiles=[int(p) for p in percentiles],
        method_mean=float(scores.method_scores.mean()),
        random_mean=float(scores.random_scores.mean()),
        random_seed_means=[float(m) for m in scores.random_scores.mean(axis=1)],
        difference_mean=float(differences.mean()),
        difference_ci_low=float(low),
        difference_ci_high=float(high),
        method_beats_random=bool(low > 0),
        share_all_zero_maps=float(scores.all_zero.mean()),
        seconds_per_image=scores.seconds / len(differences),
    )


def road_faithfulness(
    detector: Detector,
    images: np.ndarray,
    *,
    method: CamMethod = "gradcam",
    target: CamTarget = "synthetic",
    random_seeds: Sequence[int] = (0, 1, 2, 3, 4),
    percentiles: Sequence[int] = DEFAULT_PERCENTILES,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> RoadResult:
    """ROAD of ``method`` versus RandomCAM (mean of ``random_seeds``) on uint8 NHWC images."""
    scores = road_image_scores(
        detector, images, method=method, target=target, random_seeds=random_seeds, percentiles=percentiles, seed=seed
    )
    return summarise_road(
        scores, method=method, target=target, percentiles=percentiles, n_bootstrap=n_bootstrap, seed=seed
    )
