"""Fréchet distance between two feature sets, with a jackknife CI, the FD-infinity extrapolation and the
real-vs-real floor.

FD = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)). The last term is computed in float64 from the
eigenvalues of a symmetric positive semi-definite matrix with the same non-zero spectrum as S1 S2: for
S1 = A^T A and S2 = B^T B, the eigenvalues of S1 S2 are the squared singular values of C = A B^T, i.e. the
eigenvalues of C C^T. A is the centred data itself when a set has no more rows than dimensions; otherwise the
eigenvalues of L^T S2 L with S1 = L L^T (Cholesky, or U sqrt(W) from eigh when S1 is singular). No
scipy.linalg.sqrtm, so no complex parts to throw away.

FD is biased by N and needs N > D for a full-rank covariance: below that it is refused unless the caller opts in
(`allow_rank_deficient=True`), in which case the result says so and should be read next to the real-vs-real floor
at the same N (`compute_real_floor`). FD-infinity follows Chong & Forsyth, "Effectively Unbiased FID and Inception
Score and where to find them" (CVPR 2020): FD at several subsample sizes N of the generated set, a straight line in
1/N, and its intercept.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.linalg.blas

from metrics.feature_inputs import FeatureLike, FeatureProvenance, as_matrix, common_provenance
from metrics.results import (
    ConfidenceInterval,
    InsufficientSamplesError,
    JsonResult,
    Seed,
    jackknife_interval,
    resolve_seed,
    limited_blas_threads,
)

@dataclass(frozen=True)
class FrechetDistanceResult(JsonResult):
    label: str  # e.g. "FD (EfficientNet-Lite0, ImageNet)"
    value: float
    mean_term: float  # |mu1 - mu2|^2
    covariance_term: float  # tr(S1 + S2 - 2 (S1 S2)^(1/2))
    standard_error: float | None
    ci: ConfidenceInterval | None
    n_reference: int
    n_generated: int
    full_rank: bool  # both N > D
    provenance: FeatureProvenance
    seed: int | None


@dataclass(frozen=True)
class FdInfinityResult(JsonResult):
    label: str
    value: float  # intercept of FD against 1/N
    slope: float
    r_squared: float
    sample_sizes: tuple[int, ...]
    fd_values: tuple[float, ...]
    n_reference: int
    provenance: FeatureProvenance
    seed: int


@dataclass(frozen=True)
class RealFloorResult(JsonResult):
    label: str
    n_per_set: int
    floor: float  # mean FD between disjoint random halves of the reference
    floor_values: tuple[float, ...]
    generated: float | None  # mean FD of n generated vs the held-out half, same N as the floor
    generated_values: tuple[float, ...]
    full_rank: bool
    provenance: FeatureProvenance
    seed: int


@dataclass
class _Moments:
    """Mean, covariance (ddof=1) and, while available, the centred rows of one set."""

    n: int
    mean: np.ndarray
    rows: np.ndarray | None = None  # centred rows, kept only where the row-space route is cheaper
    _covariance: np.ndarray | None = None

    @classmethod
    def of(cls, rows: np.ndarray) -> _Moments:
        mean = rows.mean(axis=0)
        return cls(len(rows), mean, rows - mean)

    @property
    def dim(self) -> int:
        return len(self.mean)

    @property
    def covariance(self) -> np.ndarray:
        if self._covariance is None:
            self._covariance = self.rows.T @ self.rows / (self.n - 1)
        return self._covariance

    @property
    def trace(self) -> float:
        if self._covariance is None:
            return float(np.einsum("ij,ij->", self.rows, self.rows)) / (self.n - 1)
        return float(np.trace(self._covariance))


def _sum_sqrt_eigenvalues(symmetric: np.ndarray) -> float:
    # driver "ev" (QR iteration on the tridiagonal form): 0.15 s vs 0.23 s for "evr" at D=1280, same values.
    eigenvalues = scipy.linalg.eigh(symmetric, eigvals_only=True, overwrite_a=True, check_finite=False, driver="ev")
    return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


def _covariance_factor(covariance: np.ndarray) -> np.ndarray:
    """L with L L^T = covariance: Cholesky when positive definite, else U sqrt(max(w, 0)) from eigh."""
    try:
        return scipy.linalg.cholesky(covariance, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        eigenvalues, eigenvectors = scipy.linalg.eigh(covariance, check_finite=False)
        return eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))


def _trace_sqrt_product(first: _Moments, second: _Moments, first_factor: np.ndarray | None = None) -> float:
    """tr((S1 S2)^(1/2)), choosing the smallest symmetric eigenproblem with the same non-zero spectrum."""
    small, other = (first, second) if first.n <= second.n else (second, first)
    if small.n <= small.dim and small.rows is not None:
        rows = small.rows / np.sqrt(small.n - 1)  # S_small = rows^T rows
        if other.n <= other.dim and other.rows is not None:
            cross = rows @ (other.rows / np.sqrt(other.n - 1)).T
            return _sum_sqrt_eigenvalues(cross @ cross.T if cross.shape[0] <= cross.shape[1] else cross.T @ cross)
        return _sum_sqrt_eigenvalues(rows @ other.covariance @ rows.T)
    factor = first_factor if first_factor is not None else _covariance_factor(first.covariance)
    return _sum_sqrt_eigenvalues(_congruence(factor, second.covariance))


def _congruence(factor: np.ndarray, symmetric: np.ndarray) -> np.ndarray:
    """factor^T @ symmetric @ factor, with BLAS triangular products when `factor` is a Cholesky factor."""
    if np.allclose(np.triu(factor, 1), 0.0):
        right = scipy.linalg.blas.dtrmm(1.0, factor, symmetric, side=1, lower=1)  # symmetric @ L
        return scipy.linalg.blas.dtrmm(1.0, factor, right, side=0, lower=1, trans_a=1)  # L^T @ (...)
    return factor.T @ symmetric @ factor


def trace_sqrt_product(centred_1: np.ndarray, centred_2: np.ndarray) -> float:
    """tr((S1 S2)^(1/2)) for S_i the sample covariances (ddof=1) of the given rows."""
    return _trace_sqrt_product(_Moments.of(centred_1), _Moments.of(centred_2))


def frechet_distance_from_statistics(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """FD between two Gaussians given means and covariances (float64, eigenvalue route)."""
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    first = _Moments(n=sigma1.shape[0] + 2, mean=np.asarray(mu1, np.float64), _covariance=sigma1)
    second = _Moments(n=sigma2.shape[0] + 2, mean=np.asarray(mu2, np.float64), _covariance=sigma2)
    return _frechet(first, second)


def _frechet(first: _Moments, second: _Moments, first_factor: np.ndarray | None = None) -> float:
    gap = first.mean - second.mean
    return float(gap @ gap + first.trace + second.trace - 2.0 * _trace_sqrt_product(first, second, first_factor))


def _check_sample_sizes(n_reference: int, n_generated: int, dim: int, allow_rank_deficient: bool, what: str) -> bool:
    if min(n_reference, n_generated) < 2:
        raise InsufficientSamplesError(f"{what} needs at least 2 images per set, got {n_reference} and {n_generated}")
    full_rank = min(n_reference, n_generated) > dim
    if not full_rank and not allow_rank_deficient:
        raise InsufficientSamplesError(
            f"{what} needs more images than feature dimensions for a full-rank covariance: got "
            f"N_reference={n_reference}, N_generated={n_generated}, D={dim}. Below that the value is dominated by N. "
            f"Use at least {dim + 1} images per set, or pass allow_rank_deficient=True and compare only against "
            f"the real-vs-real floor at the same N."
        )
    return full_rank


def _frechet_of_rows(reference: np.ndarray, generated: np.ndarray) -> float:
    return _frechet(_Moments.of(reference), _Moments.of(generated))


def _leave_group_out(rows: np.ndarray, groups: list[np.ndarray]) -> list[_Moments]:
    """Moments of `rows` without each group. With N > D they come from downdating the full second moment
    (one D x D update per group instead of a new pass over N rows); otherwise from the kept rows."""
    n, dim = rows.shape
    if n <= dim:
        keep = [np.setdiff1d(np.arange(n), group, assume_unique=True) for group in groups]
        return [_Moments.of(rows[k]) for k in keep]
    full = _Moments.of(rows)
    total = full.rows.T @ full.rows
    out = []
    for group in groups:
        part = full.rows[group]
        kept = n - len(group)
        shift = -part.sum(axis=0) / kept  # mean of the kept centred rows (the full centred sum is zero)
        covariance = (total - part.T @ part - kept * np.outer(shift, shift)) / (kept - 1)
        out.append(_Moments(kept, full.mean + shift, _covariance=covariance))
    return out


def _jackknife_frechet(reference: np.ndarray, generated: np.ndarray, n_groups: int, rng: np.random.Generator) -> np.ndarray:
    """FD with group g of both sets left out, for each of `n_groups` random disjoint groups."""
    groups_1 = np.array_split(rng.permutation(len(reference)), n_groups)
    groups_2 = np.array_split(rng.permutation(len(generated)), n_groups)
    left_1, left_2 = _leave_group_out(reference, groups_1), _leave_group_out(generated, groups_2)
    return np.array([_frechet(a, b) for a, b in zip(left_1, left_2)])


@limited_blas_threads
def compute_frechet_distance(
    reference: FeatureLike,
    generated: FeatureLike,
    *,
    seed: Seed,
    n_jackknife_groups: int = 10,
    confidence: float = 0.95,
    allow_rank_deficient: bool = False,
) -> FrechetDistanceResult:
    """FD with a confidence interval for FD at this N: estimate +- t(G-1) x delete-a-group jackknife SE.

    Why not a percentile bootstrap: a resample of N rows holds only ~0.63 N distinct rows, and FD's N-bias then
    pushes every replicate upward. Simulated on Gaussians with a decaying spectrum (D=32, N=40-400, 150 trials
    each), the raw percentile interval covered E[FD_N] in 0% of trials and the bootstrap SD was 1.5-1.7x the true
    SD, while the delete-a-group jackknife SD (G=10) was 1.0-1.25x the true SD and estimate +- 1.96 SE covered in
93-99% of trials; the t(G-1) quantile used here widens that a little for the SE's own uncertainty.
    `n_jackknife_groups=0` skips the interval.
    """
    provenance = common_provenance(reference, generated)
    ref, gen = as_matrix(reference), as_matrix(generated)
    full_rank = _check_sample_sizes(len(ref), len(gen), ref.shape[1], allow_rank_deficient, "FD")
    recorded_seed, rng = resolve_seed(seed)
    first, second = _Moments.of(ref), _Moments.of(gen)
    gap = first.mean - second.mean
    mean_term = float(gap @ gap)
    value = _frechet(first, second)
    ci = standard_error = None
    if n_jackknife_groups >= 2:
        groups = min(n_jackknife_groups, len(ref), len(gen))
        values = _jackknife_frechet(ref, gen, groups, rng)
        standard_error, ci = jackknife_interval(value, values, confidence, ", both sets", lower_bound=0.0)
    return FrechetDistanceResult(
        label=provenance.label("FD"),
        value=value,
        mean_term=mean_term,
        covariance_term=value - mean_term,
        standard_error=standard_error,
        ci=ci,
        n_reference=len(ref),
        n_generated=len(gen),
        full_rank=full_rank,
        provenance=provenance,
        seed=recorded_seed,
    )


@limited_blas_threads
def compute_fd_infinity(
    reference: FeatureLike,
    generated: FeatureLike,
    *,
    seed: Seed,
    n_points: int = 15,
    min_n: int | None = None,
    allow_rank_deficient: bool = False,
) -> FdInfinityResult:
    """FD extrapolated to infinitely many generated images (Chong & Forsyth 2020).

    The generated set is subsampled without replacement at `n_points` sizes evenly spaced from `min_n` to N
    (default: the smallest full-rank size D+1, or N/5 when rank-deficient sizes are allowed); the reference is used
    whole, as in the paper. FD is linear in 1/N to first order; the fitted intercept is FD-infinity.
    """
    provenance = common_provenance(reference, generated)
    ref, gen = as_matrix(reference), as_matrix(generated)
    dim = ref.shape[1]
    _check_sample_sizes(len(ref), len(gen), dim, allow_rank_deficient, "FD-infinity")
    recorded_seed, rng = resolve_seed(seed)
    if min_n is None:
        min_n = max(2, len(gen) // 5) if allow_rank_deficient else dim + 1
    if not allow_rank_deficient and min_n <= dim:
        raise InsufficientSamplesError(f"min_n={min_n} is not above D={dim}; pass allow_rank_deficient=True")
    sizes = np.unique(np.linspace(min_n, len(gen), n_points).round().astype(int))
    if len(sizes) < 3:
        raise InsufficientSamplesError(f"FD-infinity needs at least 3 distinct sizes between {min_n} and {len(gen)}")
    reference_moments = _Moments.of(ref)
    reference_factor = _covariance_factor(reference_moments.covariance) if len(ref) > dim else None
    values = []
    for size in sizes:
        sample = _Moments.of(gen[rng.choice(len(gen), size=size, replace=False)])
        values.append(_frechet(reference_moments, sample, reference_factor))
    inverse = 1.0 / sizes
    slope, intercept = np.polyfit(inverse, values, 1)
    fitted = intercept + slope * inverse
    residual = float(np.sum((np.asarray(values) - fitted) ** 2))
    total = float(np.sum((np.asarray(values) - np.mean(values)) ** 2))
    return FdInfinityResult(
        label=provenance.label("FD") + " extrapolated to N=inf",
        value=float(intercept),
        slope=float(slope),
        r_squared=1.0 - residual / total if total > 0 else 1.0,
        sample_sizes=tuple(int(s) for s in sizes),
        fd_values=tuple(values),
        n_reference=len(ref),
        provenance=provenance,
        seed=recorded_seed,
    )


@limited_blas_threads
def compute_real_floor(
    reference: FeatureLike,
    generated: FeatureLike | None = None,
    *,
    seed: Seed,
    n_splits: int = 5,
) -> RealFloorResult:
    """FD between two disjoint random halves of the reference: the value a perfect generator would get at this N.

    With `generated`, also FD of n generated images against the same held-out halves, so both numbers share N
    (and with it the N-bias, full rank or not). Averaged over `n_splits` random splits.
    """
    provenance = common_provenance(reference, generated if generated is not None else reference)
    ref = as_matrix(reference)
    gen = as_matrix(generated) if generated is not None else None
    n = len(ref) // 2 if gen is None else min(len(ref) // 2, len(gen))
    if n < 2:
        raise InsufficientSamplesError(f"the real-vs-real floor needs at least 4 reference images, got {len(ref)}")
    recorded_seed, rng = resolve_seed(seed)
    floors, matched = [], []
    for _ in range(n_splits):
        order = rng.permutation(len(ref))
        half_a, half_b = ref[order[:n]], ref[order[n : 2 * n]]
        floors.append(_frechet_of_rows(half_a, half_b))
        if gen is not None:
            matched.append(_frechet_of_rows(gen[rng.choice(len(gen), size=n, replace=False)], half_b))
    return RealFloorResult(
        label=provenance.label("FD") + " real-vs-real floor",
        n_per_set=n,
        floor=float(np.mean(floors)),
        floor_values=tuple(float(v) for v in floors),
        generated=float(np.mean(matched)) if matched else None,
        generated_values=tuple(float(v) for v in matched),
        full_rank=n > ref.shape[1],
        provenance=provenance,
        seed=recorded_seed,
    )
