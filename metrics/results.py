"""Shared pieces of every metric result: JSON conversion, seeds, confidence intervals, sample-size refusals."""
from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, Union

import numpy as np
from threadpoolctl import threadpool_limits

Seed = Union[int, np.random.Generator]
F = TypeVar("F", bound=Callable[..., Any])

# BLAS threads for the metric numerics. One by default: on the shared 2-core machine (load average 5-6) a full FD
# with its jackknife took 8.4 s on one OpenBLAS thread and 20-26 s on two (threads spin against each other and
# against other processes), and production runs several Celery worker processes per machine anyway.
BLAS_THREADS = int(os.environ.get("DERMAUDIT_METRICS_BLAS_THREADS", "1"))


def limited_blas_threads(function: F) -> F:
    """Run `function` with at most BLAS_THREADS BLAS/LAPACK threads."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with threadpool_limits(BLAS_THREADS, user_api="blas"):
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class InsufficientSamplesError(ValueError):
    """A metric was asked for with fewer samples than it needs to mean anything."""


def resolve_seed(seed: Seed) -> tuple[int, np.random.Generator]:
    """(recorded integer seed, generator). A Generator passed in is advanced by one draw so that the integer
    recorded in the result reproduces the numbers: same Generator state in, same numbers out."""
    if isinstance(seed, np.random.Generator):
        seed = int(seed.integers(0, 2**63 - 1))
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int or a numpy Generator, got {type(seed).__name__}")
    return int(seed), np.random.default_rng(int(seed))


@dataclass(frozen=True)
class ConfidenceInterval:
    low: float
    high: float
    level: float
    method: str  # e.g. "percentile bootstrap over both sets", "Wilson score"
    n_resamples: int | None = None


def percentile_interval(values: np.ndarray, level: float, method: str) -> ConfidenceInterval:
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return ConfidenceInterval(float(low), float(high), level, method, int(finite.size))


def jackknife_quantile(confidence: float, groups: int) -> float:
    """Student-t quantile with groups - 1 degrees of freedom: the SE itself rests on only `groups` replicates."""
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2.0, df=groups - 1))


def jackknife_method(groups: int, note: str = "") -> str:
    return f"estimate +- t({groups - 1}) x delete-a-group jackknife SE ({groups} random groups{note})"


def jackknife_interval(
    estimate: float, replicates: np.ndarray, confidence: float, note: str = "", lower_bound: float | None = None
) -> tuple[float, ConfidenceInterval]:
    """(standard error, interval) from leave-one-group-out replicates."""
    groups = len(replicates)
    se = float(np.sqrt((groups - 1) / groups * np.sum((replicates - replicates.mean()) ** 2)))
    half = jackknife_quantile(confidence, groups) * se
    low = estimate - half if lower_bound is None else max(lower_bound, estimate - half)
    return se, ConfidenceInterval(low, estimate + half, confidence, jackknife_method(groups, note), groups)


def wilson_interval(successes: int, n: int, level: float = 0.95) -> ConfidenceInterval:
    from scipy.stats import norm

    if n == 0:
        return ConfidenceInterval(math.nan, math.nan, level, "Wilson score")
    z = float(norm.ppf(0.5 + level / 2.0))
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return ConfidenceInterval(max(0.0, centre - half), min(1.0, centre + half), level, "Wilson score")


def to_jsonable(value: Any) -> Any:
    """Plain JSON types: dataclasses to dicts, numpy scalars/arrays to Python numbers/lists, NaN/inf to None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: to_jsonable(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return [to_jsonable(item) for item in value.tolist()]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        number = float(value)
        return number if math.isfinite(number) else None
    return value


class JsonResult:
    """Mixin for result dataclasses: `to_dict()` gives JSON-serialisable content for storage and reports."""

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)
