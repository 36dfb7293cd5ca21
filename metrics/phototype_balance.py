"""How balanced a set's Fitzpatrick distribution is, scored against a target distribution.

The observed distribution is over types I-VI among images with a type; undetermined images are counted and
reported beside it, never silently folded into a type. Targets: "uniform" (default), "reference" (another set's
distribution, e.g. the real data a generator was trained on) or a user-given weight per type.

Distances (observed vs target):
- total variation distance, 0.5 * sum |p - q|: the share of images that would have to change type;
- KL divergence KL(observed || target) in nats (infinite when the set has a type the target excludes);
- ordinal earth mover's distance (1-D Wasserstein over the type numbers): how far, in types, the mass must move,
  so that missing type VI counts more than missing type II when the target is lighter;
- Pielou evenness H(observed) / ln 6 over all six types (1 = all types equally present, 0 = a single type);
- chi-square test: goodness of fit against a fixed target; a test of homogeneity (2 x 6 table) against a reference
  set, which is itself a sample. Expected counts below 5 make its p-value unreliable; a warning says so and a
  Monte-Carlo p-value (multinomial draws under the target) is given beside the asymptotic one for fixed targets.
Bootstrap CIs of the TVD and EMD redraw the set (and the reference) multinomially from their observed proportions;
a type with zero observed images is never redrawn, so the intervals cannot reflect types the set lacks entirely.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats

from metrics.phototype import FITZPATRICK_TYPES, coerce_fitzpatrick, json_safe

TypeCounts = Mapping[object, int]


@dataclass(frozen=True)
class BalanceScore:
    counts: dict[int, int]  # images per type I..VI
    n_undetermined: int
    n_total: int  # determined + undetermined
    observed: dict[int, float]  # proportions over I..VI among determined images
    target: dict[int, float]
    target_name: str  # "uniform", "reference" or "custom"
    total_variation: float
    total_variation_ci: tuple[float, float]
    kl_divergence: float  # nats, KL(observed || target)
    earth_movers: float  # in Fitzpatrick types
    earth_movers_ci: tuple[float, float]
    pielou_evenness: float
    chi_square_test: str  # "goodness-of-fit" or "homogeneity"
    chi_square: float
    chi_square_dof: int
    chi_square_p: float
    chi_square_p_monte_carlo: float | None  # fixed targets only
    confidence: float
    n_boot: int
    seed: int
    warnings: list[str] = field(default_factory=list)

    @property
    def undetermined_share(self) -> float:
        return self.n_undetermined / self.n_total if self.n_total else float("nan")

    def to_dict(self) -> dict:
        """JSON-ready (also for PostgreSQL jsonb): keys as strings, infinite values as None (see `warnings`)."""
        return json_safe({**asdict(self), "undetermined_share": self.undetermined_share})


def count_phototypes(values: Sequence[object]) -> tuple[dict[int, int], int]:
    """(images per type 1-6, number undetermined) from labels/estimates (ints, roman numerals, PhototypeEstimate)."""
    counts = {t: 0 for t in FITZPATRICK_TYPES}
    undetermined = 0
    for value in values:
        fitzpatrick = coerce_fitzpatrick(value)
        if fitzpatrick is None:
            undetermined += 1
        else:
            counts[fitzpatrick] += 1
    return counts, undetermined


def _as_counts(data: TypeCounts | Sequence[object]) -> tuple[np.ndarray, int]:
    """Counts arrive as a mapping (type -> count, "undetermined"/None -> count); anything else is a list of labels."""
    if isinstance(data, Mapping):
        counts = np.zeros(len(FITZPATRICK_TYPES), dtype=np.int64)
        undetermined = 0
        for key, count in data.items():
            if count < 0:
                raise ValueError(f"negative count for {key!r}")
            fitzpatrick = coerce_fitzpatrick(key)
            if fitzpatrick is None:
                undetermined += int(count)
            else:
                counts[fitzpatrick - 1] += int(count)
        return counts, undetermined
    by_type, undetermined = count_phototypes(data)
    return np.array([by_type[t] for t in FITZPATRICK_TYPES], dtype=np.int64), undetermined


def _as_target(target: str | Mapping[object, float] | Sequence[float], reference_counts: np.ndarray | None):
    if isinstance(target, str):
        if target == "uniform":
            return np.full(len(FITZPATRICK_TYPES), 1 / len(FITZPATRICK_TYPES)), "uniform"
        if target == "reference":
            if reference_counts is None or reference_counts.sum() == 0:
                raise ValueError('target="reference" needs a reference with at least one typed image')
            return reference_counts / reference_counts.sum(), "reference"
        raise ValueError(f"unknown target {target!r}: use 'uniform', 'reference' or weights per type")
    weights = np.zeros(len(FITZPATRICK_TYPES))
    if isinstance(target, Mapping):
        for key, weight in target.items():
            fitzpatrick = coerce_fitzpatrick(key)
            if fitzpatrick is None:
                raise ValueError("a target gives weights to types I-VI only")
            weights[fitzpatrick - 1] = weight
    else:
        if len(target) != len(FITZPATRICK_TYPES):
            raise ValueError("a target sequence needs one weight per type I..VI")
        weights[:] = target
    if (weights < 0).any() or weights.sum() <= 0:
        raise ValueError("target weights must be non-negative and not all zero")
    return weights / weights.sum(), "custom"


def _total_variation(p: np.ndarray, q: np.ndarray) -> float:
    return 0.5 * float(np.abs(p - q).sum())


def _earth_movers(p: np.ndarray, q: np.ndarray) -> float:
    types = np.asarray(FITZPATRICK_TYPES, dtype=np.float64)
    return float(stats.wasserstein_distance(types, types, p, q))


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return (float(low), float(high))


def _chi_square(counts, target, reference_counts, target_name, rng, n_boot, warnings):
    if target_name == "reference":
        table = np.vstack([counts, reference_counts])
        table = table[:, table.sum(axis=0) > 0]  # a type absent from both sets carries no information
        result = stats.chi2_contingency(table, correction=False)
        small = int((result.expected_freq < 5).sum())
        if small:
            warnings.append(
                f"chi-square homogeneity: {small} of {result.expected_freq.size} expected counts are below 5 "
                f"(smallest {result.expected_freq.min():.2f}); its p-value is unreliable"
            )
        return "homogeneity", float(result.statistic), int(result.dof), float(result.pvalue), None

    n = int(counts.sum())
    expected = target * n
    if (counts[target == 0] > 0).any():
        warnings.append("the set contains types the target gives zero weight: chi-square is infinite")
        return "goodness-of-fit", float("inf"), int((target > 0).sum() - 1), 0.0, 0.0
    keep = target > 0
    result = stats.chisquare(counts[keep], f_exp=expected[keep])
    small = int((expected[keep] < 5).sum())
    if small:
        warnings.append(
            f"chi-square goodness-of-fit: {small} of {int(keep.sum())} expected counts are below 5 "
            f"(smallest {expected[keep].min():.2f}); use the Monte-Carlo p-value"
        )
    # Multinomial draws under the target give a p-value that does not rely on large expected counts.
    simulated = rng.multinomial(n, target, size=n_boot)[:, keep]
    simulated_statistic = ((simulated - expected[keep]) ** 2 / expected[keep]).sum(axis=1)
    monte_carlo = (1 + int((simulated_statistic >= result.statistic - 1e-12).sum())) / (1 + n_boot)
    return "goodness-of-fit", float(result.statistic), int(keep.sum() - 1), float(result.pvalue), monte_carlo


def score_balance(
    observed: TypeCounts | Sequence[object],
    target: str | Mapping[object, float] | Sequence[float] = "uniform",
    *,
    reference: TypeCounts | Sequence[object] | None = None,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BalanceScore:
    """Balance of a set's phototypes against `target`.

    observed / reference: a mapping type -> count (keys 1-6 or "I".."VI"; None or "undetermined" for undetermined)
    or a sequence of per-image labels/estimates. target: "uniform", "reference" (needs `reference`), or weights.
    """
    counts, undetermined = _as_counts(observed)
    n = int(counts.sum())
    if n == 0:
        raise ValueError("no image in the set has a phototype; balance cannot be scored")
    reference_counts = _as_counts(reference)[0] if reference is not None else None
    target_p, target_name = _as_target(target, reference_counts)
    p = counts / n
    rng = np.random.default_rng(seed)
    warnings: list[str] = []

    boot_p = rng.multinomial(n, p, size=n_boot) / n
    if target_name == "reference":
        m = int(reference_counts.sum())
        boot_q = rng.multinomial(m, target_p, size=n_boot) / m
    else:
        boot_q = np.broadcast_to(target_p, boot_p.shape)
    boot_tvd = 0.5 * np.abs(boot_p - boot_q).sum(axis=1)
    # 1-D EMD between distributions on equally spaced points is the L1 distance between their CDFs.
    boot_emd = np.abs(np.cumsum(boot_p - boot_q, axis=1)[:, :-1]).sum(axis=1)

    test, chi2, dof, p_value, p_monte_carlo = _chi_square(
        counts, target_p, reference_counts, target_name, rng, n_boot, warnings
    )
    kl_divergence = float(stats.entropy(p, target_p))
    if math.isinf(kl_divergence):
        warnings.append("the set contains types the target gives zero weight: KL divergence is infinite")
    if undetermined:
        warnings.append(f"{undetermined} of {n + undetermined} images are undetermined and not in the distribution")

    return BalanceScore(
        counts={t: int(c) for t, c in zip(FITZPATRICK_TYPES, counts)},
        n_undetermined=undetermined,
        n_total=n + undetermined,
        observed={t: float(v) for t, v in zip(FITZPATRICK_TYPES, p)},
        target={t: float(v) for t, v in zip(FITZPATRICK_TYPES, target_p)},
        target_name=target_name,
        total_variation=_total_variation(p, target_p),
        total_variation_ci=_interval(boot_tvd, confidence),
        kl_divergence=kl_divergence,
        earth_movers=_earth_movers(p, target_p),
        earth_movers_ci=_interval(boot_emd, confidence),
        pielou_evenness=float(stats.entropy(p) / np.log(len(FITZPATRICK_TYPES))),
        chi_square_test=test,
        chi_square=chi2,
        chi_square_dof=dof,
        chi_square_p=p_value,
        chi_square_p_monte_carlo=p_monte_carlo,
        confidence=confidence,
        n_boot=n_boot,
        seed=seed,
        warnings=warnings,
    )
