"""Precision, recall, density and coverage (Naeem et al., "Reliable Fidelity and Diversity Metrics for Generative
Models", ICML 2020), with k stated in every result (default k = 5, the paper's and the `prdc` package's choice;
Kynkäänniemi et al. used k = 3, so numbers with different k are not comparable).

Same conventions as the `prdc` package (tested equal): Euclidean distances, the k-NN radius counts the point itself
as its 0-th neighbour, strict "<" comparisons. Distances are float64 here.

Uncertainty: each metric is a mean over per-sample indicators (precision, density: over generated samples; recall,
coverage: over reference samples). The CI resamples those per-sample values with the other set's manifold held
fixed, so it covers the sampling of one set given the other, not the refitting of the k-NN radii.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metrics.feature_inputs import FeatureLike, FeatureProvenance, as_matrix, common_provenance
from metrics.results import (
    ConfidenceInterval,
    InsufficientSamplesError,
    JsonResult,
    Seed,
    limited_blas_threads,
    percentile_interval,
    resolve_seed,
)

DEFAULT_K = 5


@dataclass(frozen=True)
class PrecisionRecallResult(JsonResult):
    label: str
    precision: float
    recall: float
    density: float
    coverage: float
    precision_ci: ConfidenceInterval | None
    recall_ci: ConfidenceInterval | None
    density_ci: ConfidenceInterval | None
    coverage_ci: ConfidenceInterval | None
    k: int
    n_reference: int
    n_generated: int
    provenance: FeatureProvenance
    seed: int


def pairwise_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Euclidean distances (float64) via |x|^2 + |y|^2 - 2 x.y, clipped at 0 against rounding."""
    squared = np.einsum("ij,ij->i", x, x)[:, None] + np.einsum("ij,ij->i", y, y)[None, :] - 2.0 * (x @ y.T)
    return np.sqrt(np.clip(squared, 0.0, None))


def self_distances(x: np.ndarray) -> np.ndarray:
    distances = pairwise_distances(x, x)
    np.fill_diagonal(distances, 0.0)  # exact zero: a point must be its own 0-th neighbour
    return distances


def kth_neighbour_radii(distances_to_self: np.ndarray, k: int) -> np.ndarray:
    """Distance of each point to its k-th nearest neighbour, the point itself being the 0-th."""
    return np.partition(distances_to_self, k, axis=1)[:, k]


@limited_blas_threads
def compute_precision_recall(
    reference: FeatureLike,
    generated: FeatureLike,
    *,
    seed: Seed,
    k: int = DEFAULT_K,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
) -> PrecisionRecallResult:
    provenance = common_provenance(reference, generated)
    ref, gen = as_matrix(reference), as_matrix(generated)
    if min(len(ref), len(gen)) <= k:
        raise InsufficientSamplesError(f"k={k} needs more than {k} images per set, got {len(ref)} and {len(gen)}")
    recorded_seed, rng = resolve_seed(seed)
    real_radii = kth_neighbour_radii(self_distances(ref), k)
    fake_radii = kth_neighbour_radii(self_distances(gen), k)
    cross = pairwise_distances(ref, gen)  # (N_ref, N_gen)
    inside_real_balls = cross < real_radii[:, None]
    per_fake_precision = inside_real_balls.any(axis=0).astype(np.float64)
    per_fake_density = inside_real_balls.sum(axis=0) / k
    per_real_recall = (cross < fake_radii[None, :]).any(axis=1).astype(np.float64)
    per_real_coverage = (cross.min(axis=1) < real_radii).astype(np.float64)

    def interval(values: np.ndarray, over: str) -> ConfidenceInterval | None:
        if n_bootstrap <= 0:
            return None
        draws = rng.integers(0, len(values), size=(n_bootstrap, len(values)))
        return percentile_interval(
            values[draws].mean(axis=1), confidence, f"percentile bootstrap over {over} samples, other set fixed"
        )

    return PrecisionRecallResult(
        label=provenance.label(f"Precision/recall/density/coverage k={k}"),
        precision=float(per_fake_precision.mean()),
        recall=float(per_real_recall.mean()),
        density=float(per_fake_density.mean()),
        coverage=float(per_real_coverage.mean()),
        precision_ci=interval(per_fake_precision, "generated"),
        recall_ci=interval(per_real_recall, "reference"),
        density_ci=interval(per_fake_density, "generated"),
        coverage_ci=interval(per_real_coverage, "reference"),
        k=k,
        n_reference=len(ref),
        n_generated=len(gen),
        provenance=provenance,
        seed=recorded_seed,
    )
