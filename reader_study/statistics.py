"""Reader-study statistics: per-reader performance, agreement, quality ratings and diagnoses.

Conventions: "positive" means *synthetic*; a rating is higher when the reader thinks the image is more likely
synthetic (see ``signed_confidence``). Bootstrap intervals resample cases, are percentile intervals and are
seeded, so the same answers always give the same numbers. The MRMC (reader-averaged AUC) analysis lives in
``reader_study.mrmc`` and is re-exported here. No Django here: plain sequences in, dataclasses out.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa
from statsmodels.stats.proportion import proportion_confint

from reader_study.mrmc import (  # noqa: F401  (re-exported: one import point for the service)
    ARM_COVARIANCE_METHOD,
    COVARIANCE_METHODS,
    ArmComparisonResult,
    DesignError,
    ModalityComparisonResult,
    MRMCData,
    MRMCResult,
    SingleModalityResult,
    analyze_mrmc,
    analyze_single_modality,
    arm_auc_covariance,
    auc_covariance,
    compare_arms,
    compare_modalities,
    empirical_auc,
    mrmc_data_from_table,
    to_jsonable,
)

DEFAULT_BOOTSTRAP = 2000


@dataclass(frozen=True)
class ProportionEstimate:
    """successes / total with a Wilson score interval (estimate and bounds are NaN when total is 0)."""

    successes: int
    total: int
    estimate: float
    ci_low: float
    ci_high: float
    confidence_level: float

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


def wilson_proportion(successes: int, total: int, confidence_level: float = 0.95) -> ProportionEstimate:
    if total == 0:
        return ProportionEstimate(0, 0, math.nan, math.nan, math.nan, confidence_level)
    low, high = proportion_confint(successes, total, alpha=1 - confidence_level, method="wilson")
    return ProportionEstimate(int(successes), int(total), successes / total, float(low), float(high), confidence_level)


def signed_confidence(called_synthetic: Sequence[bool], confidence: Sequence[float]) -> np.ndarray:
    """Turn (call, confidence in that call) into one ROC rating: +confidence if called synthetic, else −confidence.

    With a 1–5 confidence this is a 10-point scale −5 … −1, +1 … +5 ordered by belief in "synthetic".
    A 0–100 slider that already means "probability synthetic" should be used as the rating directly.
    """
    sign = np.where(np.asarray(called_synthetic, dtype=bool), 1.0, -1.0)
    return sign * np.asarray(confidence, dtype=np.float64)


# --------------------------------------------------------------------------------------------------------
# Per reader
# --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReaderPerformance:
    reader: str
    n_cases: int
    accuracy: ProportionEstimate
    sensitivity: ProportionEstimate  # synthetic images called synthetic
    specificity: ProportionEstimate  # real images called real
    binomial_p_value: float  # exact test of accuracy = 50%
    binomial_alternative: str
    auc: float  # empirical AUC of the ratings; NaN without ratings or without both classes
    auc_standard_error: float  # DeLong
    auc_ci_low: float  # normal approximation, clipped to [0, 1]
    auc_ci_high: float

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


def reader_performance(
    truth_synthetic: Sequence[bool],
    called_synthetic: Sequence[bool],
    synthetic_rating: Sequence[float] | None = None,
    *,
    reader: str = "",
    confidence_level: float = 0.95,
    alternative: Literal["two-sided", "greater", "less"] = "two-sided",
) -> ReaderPerformance:
    truth = np.asarray(truth_synthetic, dtype=bool)
    called = np.asarray(called_synthetic, dtype=bool)
    if truth.shape != called.shape or truth.ndim != 1 or truth.size == 0:
        raise ValueError("truth_synthetic and called_synthetic must be non-empty 1-D and of equal length")
    correct = int((truth == called).sum())
    n = int(truth.size)
    auc = se = low = high = math.nan
    if synthetic_rating is not None:
        rating = np.asarray(synthetic_rating, dtype=np.float64)
        if rating.shape != truth.shape:
            raise ValueError("synthetic_rating must have one value per case")
        if truth.any() and not truth.all():
            auc = empirical_auc(truth, rating)
            if truth.sum() >= 2 and (~truth).sum() >= 2:
                _, cov = auc_covariance(rating[None, :], truth, "delong")
                se = math.sqrt(max(float(cov[0, 0]), 0.0))
                z = stats.norm.ppf(0.5 + confidence_level / 2)
                low, high = max(0.0, auc - z * se), min(1.0, auc + z * se)
    return ReaderPerformance(
        reader=reader,
        n_cases=n,
        accuracy=wilson_proportion(correct, n, confidence_level),
        sensitivity=wilson_proportion(int((called & truth).sum()), int(truth.sum()), confidence_level),
        specificity=wilson_proportion(int((~called & ~truth).sum()), int((~truth).sum()), confidence_level),
        binomial_p_value=float(stats.binomtest(correct, n, p=0.5, alternative=alternative).pvalue),
        binomial_alternative=alternative,
        auc=auc,
        auc_standard_error=se,
        auc_ci_low=low,
        auc_ci_high=high,
    )


# --------------------------------------------------------------------------------------------------------
# Agreement (kappa)
# --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class KappaEstimate:
    kappa: float  # NaN when undefined (both raters constant and identical: chance agreement is 1)
    ci_low: float  # percentile bootstrap over cases
    ci_high: float
    observed_agreement: float
    n_items: int
    n_bootstrap: int
    n_bootstrap_defined: int  # replicates where kappa was defined (the CI uses only these)
    confidence_level: float
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


def _encode_pair(a: Sequence[Hashable], b: Sequence[Hashable]) -> tuple[np.ndarray, np.ndarray, int]:
    if len(a) != len(b):
        raise ValueError("both raters must rate the same items (equal lengths)")
    labels = sorted(set(a) | set(b), key=repr)
    code = {label: i for i, label in enumerate(labels)}
    return np.array([code[x] for x in a], dtype=np.int64), np.array([code[x] for x in b], dtype=np.int64), len(labels)


def _kappa_from_codes(a: np.ndarray, b: np.ndarray, n_labels: int) -> np.ndarray:
    """Cohen's kappa for each row of (B, n) code arrays, via per-row confusion matrices."""
    n_rows, n = a.shape
    flat = (np.arange(n_rows)[:, None] * n_labels * n_labels + a * n_labels + b).ravel()
    confusion = np.bincount(flat, minlength=n_rows * n_labels * n_labels).reshape(n_rows, n_labels, n_labels) / n
    observed = np.trace(confusion, axis1=1, axis2=2)
    expected = (confusion.sum(axis=2) * confusion.sum(axis=1)).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(expected < 1 - 1e-12, (observed - expected) / (1 - expected), np.nan)


def _percentile_interval(replicates: np.ndarray, confidence_level: float) -> tuple[float, float, int]:
    defined = replicates[np.isfinite(replicates)]
    if defined.size == 0:
        return math.nan, math.nan, 0
    tail = (1 - confidence_level) / 2 * 100
    low, high = np.percentile(defined, [tail, 100 - tail])
    return float(low), float(high), int(defined.size)


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    codes_a, codes_b, n_labels = _encode_pair(a, b)
    if codes_a.size == 0:
        return math.nan
    return float(_kappa_from_codes(codes_a[None, :], codes_b[None, :], n_labels)[0])


def cohen_kappa_with_ci(
    a: Sequence[Hashable],
    b: Sequence[Hashable],
    *,
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
    confidence_level: float = 0.95,
    seed: int = 0,
) -> KappaEstimate:
    codes_a, codes_b, n_labels = _encode_pair(a, b)
    n = codes_a.size
    if n == 0:
        return KappaEstimate(math.nan, math.nan, math.nan, math.nan, 0, n_bootstrap, 0, confidence_level, seed)
    kappa = float(_kappa_from_codes(codes_a[None, :], codes_b[None, :], n_labels)[0])
    index = np.random.default_rng(seed).integers(0, n, size=(n_bootstrap, n))
    low, high, n_defined = _percentile_interval(
        _kappa_from_codes(codes_a[index], codes_b[index], n_labels), confidence_level
    )
    observed = float((codes_a == codes_b).mean())
    return KappaEstimate(kappa, low, high, observed, n, n_bootstrap, n_defined, confidence_level, seed)


def intra_reader_kappa(
    first_calls: Sequence[Hashable], repeat_calls: Sequence[Hashable], **bootstrap: Any
) -> KappaEstimate:
    """Agreement of one reader with themself: calls at the first and the repeated showing of the same cases."""
    return cohen_kappa_with_ci(first_calls, repeat_calls, **bootstrap)


@dataclass(frozen=True)
class PairwiseKappa:
    reader_a: str
    reader_b: str
    estimate: KappaEstimate

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


def pairwise_cohen_kappa(
    calls_by_reader: Mapping[str, Mapping[Hashable, Hashable]], **bootstrap: Any
) -> list[PairwiseKappa]:
    """Cohen's kappa for every reader pair on the cases both read (``{reader: {case: call}}``)."""
    results = []
    for reader_a, reader_b in itertools.combinations(sorted(calls_by_reader), 2):
        calls_a, calls_b = calls_by_reader[reader_a], calls_by_reader[reader_b]
        shared = sorted(set(calls_a) & set(calls_b), key=repr)
        estimate = cohen_kappa_with_ci([calls_a[c] for c in shared], [calls_b[c] for c in shared], **bootstrap)
        results.append(PairwiseKappa(reader_a, reader_b, estimate))
    return results


def fleiss_kappa_across_readers(
    calls_by_reader: Mapping[str, Mapping[Hashable, Hashable]],
    *,
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
    confidence_level: float = 0.95,
    seed: int = 0,
) -> KappaEstimate:
    """Fleiss' kappa (statsmodels) over the cases every reader read; bootstrap CI over those cases.

    ``observed_agreement`` is the mean pairwise agreement P̄ of Fleiss (1971).
    """
    readers = sorted(calls_by_reader)
    if len(readers) < 2:
        raise ValueError("Fleiss' kappa needs at least 2 readers")
    shared = sorted(set.intersection(*(set(calls_by_reader[r]) for r in readers)), key=repr)
    if not shared:
        return KappaEstimate(math.nan, math.nan, math.nan, math.nan, 0, n_bootstrap, 0, confidence_level, seed)
    labels = sorted({calls_by_reader[r][c] for r in readers for c in shared}, key=repr)
    code = {label: i for i, label in enumerate(labels)}
    subjects_by_raters = np.array([[code[calls_by_reader[r][c]] for r in readers] for c in shared])
    table, _ = aggregate_raters(subjects_by_raters, n_cat=len(labels))

    def kappa_of(counts: np.ndarray) -> float:
        # statsmodels divides by zero (and warns) when every rating falls in one category.
        if (counts.sum(axis=0) > 0).sum() < 2:
            return math.nan
        return float(fleiss_kappa(counts, method="fleiss"))

    n_raters = len(readers)
    observed = float(((table * (table - 1)).sum(axis=1) / (n_raters * (n_raters - 1))).mean())
    index = np.random.default_rng(seed).integers(0, len(shared), size=(n_bootstrap, len(shared)))
    replicates = np.array([kappa_of(table[rows]) for rows in index])
    low, high, n_defined = _percentile_interval(replicates, confidence_level)
    return KappaEstimate(
        kappa_of(table), low, high, observed, len(shared), n_bootstrap, n_defined, confidence_level, seed
    )


# --------------------------------------------------------------------------------------------------------
# Image quality (Likert) and diagnoses
# --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LikertComparison:
    """Quality ratings of synthetic vs real images.

    ``mean_difference`` = mean(synthetic) − mean(real) with a percentile bootstrap CI that resamples cases
    within each arm (all of a case's ratings travel together) when case ids are given, ratings otherwise.
    The Mann–Whitney test (two-sided, tie-corrected normal approximation) compares per-case mean ratings
    when case ids are given, so repeated ratings of one image are not counted as independent.
    ``probability_synthetic_higher`` = P(synthetic > real) + 0.5 P(tie) on the same units.
    """

    n_real_ratings: int
    n_synthetic_ratings: int
    n_real_units: int
    n_synthetic_units: int
    unit: str  # "case" or "rating"
    mean_real: float
    mean_synthetic: float
    mean_difference: float
    ci_low: float
    ci_high: float
    mann_whitney_u: float
    p_value: float
    probability_synthetic_higher: float
    n_bootstrap: int
    confidence_level: float
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


def _group_by_case(ratings: np.ndarray, cases: Sequence[Hashable] | None) -> list[np.ndarray]:
    if cases is None:
        return [ratings[i : i + 1] for i in range(ratings.size)]
    if len(cases) != ratings.size:
        raise ValueError("need one case id per rating")
    groups: dict[Hashable, list[float]] = {}
    for case, value in zip(cases, ratings):
        groups.setdefault(case, []).append(float(value))
    return [np.asarray(groups[c]) for c in sorted(groups, key=repr)]


def _bootstrap_means(groups: list[np.ndarray], n_bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    sums = np.array([g.sum() for g in groups])
    counts = np.array([g.size for g in groups])
    index = rng.integers(0, len(groups), size=(n_bootstrap, len(groups)))
    return sums[index].sum(axis=1) / counts[index].sum(axis=1)


def compare_likert_quality(
    real_ratings: Sequence[float],
    synthetic_ratings: Sequence[float],
    *,
    real_cases: Sequence[Hashable] | None = None,
    synthetic_cases: Sequence[Hashable] | None = None,
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
    confidence_level: float = 0.95,
    seed: int = 0,
) -> LikertComparison:
    real = np.asarray(real_ratings, dtype=np.float64)
    synthetic = np.asarray(synthetic_ratings, dtype=np.float64)
    if real.size == 0 or synthetic.size == 0:
        raise ValueError("need quality ratings of both real and synthetic images")
    if (real_cases is None) != (synthetic_cases is None):
        raise ValueError("give case ids for both arms or for neither")
    real_groups, synthetic_groups = _group_by_case(real, real_cases), _group_by_case(synthetic, synthetic_cases)
    rng = np.random.default_rng(seed)
    differences = _bootstrap_means(synthetic_groups, n_bootstrap, rng) - _bootstrap_means(real_groups, n_bootstrap, rng)
    low, high, _ = _percentile_interval(differences, confidence_level)

    real_units = np.array([g.mean() for g in real_groups])
    synthetic_units = np.array([g.mean() for g in synthetic_groups])
    u_test = stats.mannwhitneyu(synthetic_units, real_units, alternative="two-sided", method="asymptotic")
    return LikertComparison(
        n_real_ratings=int(real.size),
        n_synthetic_ratings=int(synthetic.size),
        n_real_units=len(real_groups),
        n_synthetic_units=len(synthetic_groups),
        unit="rating" if real_cases is None else "case",
        mean_real=float(real.mean()),
        mean_synthetic=float(synthetic.mean()),
        mean_difference=float(synthetic.mean() - real.mean()),
        ci_low=low,
        ci_high=high,
        mann_whitney_u=float(u_test.statistic),
        p_value=float(u_test.pvalue),
        probability_synthetic_higher=float(u_test.statistic) / (synthetic_units.size * real_units.size),
        n_bootstrap=n_bootstrap,
        confidence_level=confidence_level,
        seed=seed,
    )


@dataclass(frozen=True)
class DiagnosisAgreement:
    """A reader's (or the pooled readers') diagnosis choices against the reference labels."""

    accuracy: ProportionEstimate
    kappa: KappaEstimate
    labels: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


def diagnosis_agreement(
    reference_labels: Sequence[Hashable],
    chosen_labels: Sequence[Hashable],
    *,
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
    confidence_level: float = 0.95,
    seed: int = 0,
) -> DiagnosisAgreement:
    if len(reference_labels) != len(chosen_labels):
        raise ValueError("need one chosen label per reference label")
    correct = sum(ref == chosen for ref, chosen in zip(reference_labels, chosen_labels))
    return DiagnosisAgreement(
        accuracy=wilson_proportion(int(correct), len(reference_labels), confidence_level),
        kappa=cohen_kappa_with_ci(
            reference_labels, chosen_labels, n_bootstrap=n_bootstrap, confidence_level=confidence_level, seed=seed
        ),
        labels=tuple(str(x) for x in sorted(set(reference_labels) | set(chosen_labels), key=repr)),
    )
