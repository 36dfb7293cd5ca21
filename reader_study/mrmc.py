"""Multi-reader multi-case (MRMC) analysis of the reader-averaged empirical ROC AUC.

Obuchowski–Rockette (OR) model with random readers and random cases and Hillis' denominator degrees of
freedom (Hillis 2007, Stat Med 26:596; Hillis 2008, Acad Radiol 15:647). The case-sampling covariance of the
reader × modality AUCs is estimated by one of:

- ``"unbiased"``: the U-statistic estimator (Gallas 2006; Gallas et al. 2009), unbiased for the covariance of
  two empirical AUCs over the same cases. This is what iMRMC reports; it reproduces its published values.
- ``"delong"``: DeLong et al. 1988 structural components (equal to the jackknife stratified by truth).
- ``"jackknife"``: leave-one-case-out over all cases, unstratified, as in OR-DBM MRMC / RJafroc.

Input is a long table (one row per reading: reader, modality, case, truth, rating; truth 1 = positive, higher
rating = more confident positive) for a fully crossed design. ``compare_arms`` handles the partially paired
design of a generator study: two arms with their own positive (synthetic) cases and shared negative (real) cases,
all read by the same readers. No Django here: numpy/scipy/pandas in, dataclasses out.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

CovarianceMethod = Literal["unbiased", "delong", "jackknife"]
COVARIANCE_METHODS: tuple[str, ...] = ("unbiased", "delong", "jackknife")


class DesignError(ValueError):
    """The reading table is not a usable fully crossed MRMC design."""


def to_jsonable(value: Any) -> Any:
    """Dataclasses/numpy/tuples → plain JSON types; NaN and ±inf → None (strict JSON has no NaN)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


# --------------------------------------------------------------------------------------------------------
# Empirical AUC and its case-sampling covariance
# --------------------------------------------------------------------------------------------------------

def auc_kernels(ratings: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Mann–Whitney kernels psi[k, i, j] for positive case i vs negative case j (1 if higher, 0.5 if tied).

    ``ratings`` is (K, n_cases) — one row per reader × modality — and ``truth`` (n_cases,) booleans.
    Memory is K · n_pos · n_neg float64.
    """
    ratings = np.atleast_2d(np.asarray(ratings, dtype=np.float64))
    truth = np.asarray(truth, dtype=bool)
    positive = ratings[:, truth][:, :, None]
    negative = ratings[:, ~truth][:, None, :]
    return (positive > negative) + 0.5 * (positive == negative)


def empirical_auc(truth: Sequence[bool] | np.ndarray, rating: Sequence[float] | np.ndarray) -> float:
    """Trapezoidal ROC AUC = Mann–Whitney probability P(rating_pos > rating_neg) + 0.5 P(tie)."""
    truth = np.asarray(truth, dtype=bool)
    rating = np.asarray(rating, dtype=np.float64)
    if truth.shape != rating.shape or truth.ndim != 1:
        raise ValueError("truth and rating must be 1-D arrays of equal length")
    if truth.all() or not truth.any():
        raise ValueError("AUC needs at least one positive and one negative case")
    return float(auc_kernels(rating[None, :], truth).mean())


def auc_covariance(
    ratings: np.ndarray, truth: np.ndarray, method: CovarianceMethod = "unbiased"
) -> tuple[np.ndarray, np.ndarray]:
    """Empirical AUCs (K,) and their case-sampling covariance matrix (K, K) for K rating rows on shared cases."""
    if method not in COVARIANCE_METHODS:
        raise ValueError(f"covariance method must be one of {COVARIANCE_METHODS}, got {method!r}")
    truth = np.asarray(truth, dtype=bool)
    n_pos, n_neg = int(truth.sum()), int((~truth).sum())
    if n_pos < 2 or n_neg < 2:
        raise DesignError(f"covariance estimation needs ≥ 2 positive and ≥ 2 negative cases, got {n_pos}/{n_neg}")
    psi = auc_kernels(ratings, truth)
    n_rows = psi.shape[0]
    row_sums = psi.sum(axis=2)  # (K, n_pos): per positive case
    col_sums = psi.sum(axis=1)  # (K, n_neg): per negative case
    totals = row_sums.sum(axis=1)
    aucs = totals / (n_pos * n_neg)

    if method == "delong":
        # Structural components V10 (per positive) and V01 (per negative); sample covariances with n-1.
        v10 = row_sums / n_neg
        v01 = col_sums / n_pos
        cov = np.atleast_2d(np.cov(v10)) / n_pos + np.atleast_2d(np.cov(v01)) / n_neg
    elif method == "jackknife":
        # Leave-one-case-out AUCs in closed form: drop one row (positive) or one column (negative) of psi.
        without_pos = (totals[:, None] - row_sums) / ((n_pos - 1) * n_neg)
        without_neg = (totals[:, None] - col_sums) / (n_pos * (n_neg - 1))
        loo = np.concatenate([without_pos, without_neg], axis=1)
        n_cases = n_pos + n_neg
        centred = loo - loo.mean(axis=1, keepdims=True)
        cov = (n_cases - 1) / n_cases * (centred @ centred.T)
    else:
        # E[AUC_a AUC_b] is estimated without bias by the product itself; mu_a mu_b by averaging
        # psi_a[i, j] psi_b[i', j'] over case-disjoint pairs (i != i', j != j'), which are independent.
        # Inclusion–exclusion gives that sum from all pairs minus shared-positive and shared-negative pairs.
        flat = psi.reshape(n_rows, -1)
        disjoint = np.outer(totals, totals) - row_sums @ row_sums.T - col_sums @ col_sums.T + flat @ flat.T
        cov = np.outer(aucs, aucs) - disjoint / (n_pos * (n_pos - 1) * n_neg * (n_neg - 1))
    return aucs, (cov + cov.T) / 2


# --------------------------------------------------------------------------------------------------------
# Validated, fully crossed reading data
# --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MRMCData:
    """Readings of a fully crossed design: ``ratings[m, r, c]`` for modality m, reader r, case c."""

    modalities: tuple[str, ...]
    readers: tuple[str, ...]
    cases: tuple[str, ...]
    truth: np.ndarray  # (n_cases,) bool, True = positive
    ratings: np.ndarray  # (n_modalities, n_readers, n_cases) float64

    def modality_index(self, modality: str) -> int:
        if modality not in self.modalities:
            raise KeyError(f"unknown modality {modality!r}; have {list(self.modalities)}")
        return self.modalities.index(modality)


def mrmc_data_from_table(
    table: pd.DataFrame,
    *,
    reader_col: str = "reader",
    modality_col: str = "modality",
    case_col: str = "case",
    truth_col: str = "truth",
    rating_col: str = "rating",
) -> MRMCData:
    """Validate a long reading table and pivot it; raises DesignError naming what is wrong."""
    columns = [reader_col, modality_col, case_col, truth_col, rating_col]
    missing_columns = [c for c in columns if c not in table.columns]
    if missing_columns:
        raise DesignError(f"reading table lacks columns {missing_columns}; has {list(table.columns)}")
    frame = table[columns].copy()
    frame.columns = ["reader", "modality", "case", "truth", "rating"]
    if frame.empty:
        raise DesignError("reading table is empty")
    if frame[["reader", "modality", "case", "truth"]].isna().any().any():
        raise DesignError("reader, modality, case and truth must not be missing")
    for key in ("reader", "modality", "case"):
        frame[key] = frame[key].astype(str)
    rating = pd.to_numeric(frame["rating"], errors="coerce").to_numpy(dtype=np.float64)
    if not np.isfinite(rating).all():
        raise DesignError("every rating must be a finite number")
    frame["rating"] = rating
    truth_values = set(pd.unique(frame["truth"]))
    if not truth_values <= {0, 1, True, False}:
        raise DesignError(f"truth must be 0/1, got values {sorted(map(str, truth_values))}")
    frame["truth"] = frame["truth"].astype(int)

    inconsistent = frame.groupby("case")["truth"].nunique()
    if (inconsistent > 1).any():
        raise DesignError(f"cases with conflicting truth: {sorted(inconsistent[inconsistent > 1].index)[:5]}")
    duplicated = frame.duplicated(["reader", "modality", "case"], keep=False)
    if duplicated.any():
        first = frame.loc[duplicated, ["reader", "modality", "case"]].iloc[0].tolist()
        raise DesignError(f"{int(duplicated.sum())} duplicate readings, e.g. reader/modality/case {first}")

    modalities = tuple(sorted(frame["modality"].unique()))
    readers = tuple(sorted(frame["reader"].unique()))
    cases = tuple(sorted(frame["case"].unique()))
    expected = len(modalities) * len(readers) * len(cases)
    if len(frame) != expected:
        full = pd.MultiIndex.from_product([modalities, readers, cases], names=["modality", "reader", "case"])
        absent = full.difference(pd.MultiIndex.from_frame(frame[["modality", "reader", "case"]]))
        raise DesignError(
            f"design is not fully crossed: {len(absent)} of {expected} modality × reader × case readings are "
            f"missing, e.g. {[tuple(x) for x in absent[:5]]}"
        )
    ratings = (
        frame.set_index(["modality", "reader", "case"])["rating"]
        .reindex(pd.MultiIndex.from_product([modalities, readers, cases]))
        .to_numpy(dtype=np.float64)
        .reshape(len(modalities), len(readers), len(cases))
    )
    truth = frame.groupby("case")["truth"].first().reindex(cases).to_numpy().astype(bool)
    if truth.sum() < 2 or (~truth).sum() < 2:
        raise DesignError(f"need ≥ 2 positive and ≥ 2 negative cases, got {int(truth.sum())}/{int((~truth).sum())}")
    return MRMCData(modalities=modalities, readers=readers, cases=cases, truth=truth, ratings=ratings)


# --------------------------------------------------------------------------------------------------------
# Obuchowski–Rockette / Hillis analyses
# --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SingleModalityResult:
    """Reader-averaged AUC of one modality with an OR-Hillis CI; the test is AUC = 0.5 (chance), two-sided."""

    modality: str
    readers: tuple[str, ...]
    reader_aucs: tuple[float, ...]
    auc: float
    variance: float  # MS(R)/r + max(Cov2, 0)
    standard_error: float
    df: float  # Hillis; the CI and p-value use floor(df) when integer_df
    ci_low: float
    ci_high: float
    t_statistic: float
    p_value: float
    ms_reader: float
    var_error: float  # mean case-sampling variance of one reader's AUC
    cov2: float  # mean covariance of two readers' AUCs (same modality)
    covariance_method: str
    confidence_level: float
    integer_df: bool
    n_positive: int
    n_negative: int

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


@dataclass(frozen=True, kw_only=True)
class ORHillisDifference:
    """The OR-Hillis test of a difference of two reader-averaged AUCs (a − b): the numbers both comparisons share."""

    auc_a: float
    auc_b: float
    difference: float
    standard_error: float
    df: float  # Hillis denominator df; the CI and p-value use floor(df) when integer_df
    ci_low: float
    ci_high: float
    f_statistic: float
    p_value: float
    ms_treatment: float
    ms_treatment_reader: float
    var_error: float
    cov1: float  # same reader, different modality/arm
    cov2: float  # different reader, same modality/arm
    cov3: float  # different reader, different modality/arm
    covariance_method: str
    confidence_level: float
    integer_df: bool
    n_readers: int

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


@dataclass(frozen=True, kw_only=True)
class ModalityComparisonResult(ORHillisDifference):
    """Two modalities read by the same readers on the same cases (fully crossed)."""

    modality_a: str
    modality_b: str
    n_positive: int
    n_negative: int


def _check_common(data: MRMCData, confidence_level: float) -> None:
    if len(data.readers) < 2:
        raise DesignError("random-reader analysis needs at least 2 readers")
    if not 0 < confidence_level < 1:
        raise ValueError("confidence_level must be in (0, 1)")


def _hillis_df(error_mean_square: float, model_mean_square: float, model_df: int) -> float:
    # Satterthwaite-type df of Hillis 2007: error² / (MS² / its df); infinite when MS is exactly zero.
    if model_mean_square <= 0:
        return math.inf
    return error_mean_square**2 / (model_mean_square**2 / model_df)


def _df_for_quantiles(df: float, integer_df: bool) -> float:
    # iMRMC prints CIs with t at floor(df); Hillis and RJafroc use the fractional df.
    return float(math.floor(df)) if integer_df and math.isfinite(df) else df


def _t_quantile(confidence_level: float, df: float) -> float:
    tail = 0.5 + confidence_level / 2
    return float(stats.norm.ppf(tail) if math.isinf(df) else stats.t.ppf(tail, df))


def analyze_single_modality(
    data: MRMCData,
    modality: str,
    *,
    covariance: CovarianceMethod = "unbiased",
    confidence_level: float = 0.95,
    integer_df: bool = False,
) -> SingleModalityResult:
    """OR-Hillis analysis of one modality (are readers better than chance?).

    ``integer_df=True`` floors the Hillis df before taking t quantiles, as iMRMC does for its printed CIs.
    """
    _check_common(data, confidence_level)
    ratings = data.ratings[data.modality_index(modality)]
    reader_aucs, cov = auc_covariance(ratings, data.truth, covariance)
    n_readers = len(data.readers)
    off_diagonal = ~np.eye(n_readers, dtype=bool)
    cov2 = float(cov[off_diagonal].mean())
    ms_reader = float(reader_aucs.var(ddof=1))
    error_term = ms_reader + n_readers * max(cov2, 0.0)
    variance = error_term / n_readers
    df = _hillis_df(error_term, ms_reader, n_readers - 1)
    df_used = _df_for_quantiles(df, integer_df)
    auc = float(reader_aucs.mean())
    se = math.sqrt(variance)
    half_width = _t_quantile(confidence_level, df_used) * se
    if se > 0:
        t_stat = (auc - 0.5) / se
        p_value = float(2 * (stats.norm.sf(abs(t_stat)) if math.isinf(df_used) else stats.t.sf(abs(t_stat), df_used)))
    else:
        t_stat, p_value = math.nan, math.nan
    return SingleModalityResult(
        modality=modality,
        readers=data.readers,
        reader_aucs=tuple(float(a) for a in reader_aucs),
        auc=auc,
        variance=float(variance),
        standard_error=se,
        df=float(df),
        ci_low=auc - half_width,
        ci_high=auc + half_width,
        t_statistic=float(t_stat),
        p_value=p_value,
        ms_reader=ms_reader,
        var_error=float(np.diag(cov).mean()),
        cov2=cov2,
        covariance_method=covariance,
        confidence_level=confidence_level,
        integer_df=integer_df,
        n_positive=int(data.truth.sum()),
        n_negative=int((~data.truth).sum()),
    )


def _or_hillis_difference(
    aucs: np.ndarray, cov: np.ndarray, confidence_level: float, integer_df: bool
) -> dict[str, float]:
    """OR-Hillis test of modality 0 − modality 1 from AUCs (2, r) and their case covariance (2r, 2r).

    The rows and columns of ``cov`` are ordered as ``aucs.ravel()``: modality 0's readers, then modality 1's.
    """
    n_readers = aucs.shape[1]
    modality_of = np.repeat([0, 1], n_readers)
    reader_of = np.tile(np.arange(n_readers), 2)
    same_modality = modality_of[:, None] == modality_of[None, :]
    same_reader = reader_of[:, None] == reader_of[None, :]
    cov1 = float(cov[~same_modality & same_reader].mean())
    cov2 = float(cov[same_modality & ~same_reader].mean())
    cov3 = float(cov[~same_modality & ~same_reader].mean())

    modality_means = aucs.mean(axis=1)
    reader_means = aucs.mean(axis=0)
    grand_mean = aucs.mean()
    ms_treatment = float(n_readers * ((modality_means - grand_mean) ** 2).sum())  # / (t - 1) with t = 2
    interaction = aucs - modality_means[:, None] - reader_means[None, :] + grand_mean
    ms_treatment_reader = float((interaction**2).sum() / (n_readers - 1))

    error_term = ms_treatment_reader + n_readers * max(cov2 - cov3, 0.0)
    df = _hillis_df(error_term, ms_treatment_reader, n_readers - 1)
    df_used = _df_for_quantiles(df, integer_df)
    difference = float(modality_means[0] - modality_means[1])
    se = math.sqrt(2 * error_term / n_readers)
    half_width = _t_quantile(confidence_level, df_used) * se
    if error_term > 0:
        f_stat = ms_treatment / error_term
        p_value = float(stats.chi2.sf(f_stat, 1) if math.isinf(df_used) else stats.f.sf(f_stat, 1, df_used))
    else:
        f_stat, p_value = math.nan, math.nan
    return {
        "auc_a": float(modality_means[0]), "auc_b": float(modality_means[1]), "difference": difference,
        "standard_error": se, "df": float(df), "ci_low": difference - half_width, "ci_high": difference + half_width,
        "f_statistic": float(f_stat), "p_value": p_value, "ms_treatment": ms_treatment,
        "ms_treatment_reader": ms_treatment_reader, "var_error": float(np.diag(cov).mean()),
        "cov1": cov1, "cov2": cov2, "cov3": cov3,
    }


def compare_modalities(
    data: MRMCData,
    modality_a: str,
    modality_b: str,
    *,
    covariance: CovarianceMethod = "unbiased",
    confidence_level: float = 0.95,
    integer_df: bool = False,
) -> ModalityComparisonResult:
    """OR-Hillis comparison of two modalities read by the same readers on the same cases.

    Only the two named modalities enter the mean squares and covariances (with more than two modalities in
    the study this is Hillis' recommended pairwise analysis, not the omnibus F test).
    """
    _check_common(data, confidence_level)
    if modality_a == modality_b:
        raise ValueError("compare two different modalities")
    index_a, index_b = data.modality_index(modality_a), data.modality_index(modality_b)
    n_readers = len(data.readers)
    ratings = np.concatenate([data.ratings[index_a], data.ratings[index_b]], axis=0)
    aucs, cov = auc_covariance(ratings, data.truth, covariance)
    return ModalityComparisonResult(
        modality_a=modality_a,
        modality_b=modality_b,
        **_or_hillis_difference(aucs.reshape(2, n_readers), cov, confidence_level, integer_df),
        covariance_method=covariance,
        confidence_level=confidence_level,
        integer_df=integer_df,
        n_readers=n_readers,
        n_positive=int(data.truth.sum()),
        n_negative=int((~data.truth).sum()),
    )


@dataclass(frozen=True)
class MRMCResult:
    """Every modality on its own and every pair of modalities compared (in sorted-name order)."""

    modalities: tuple[SingleModalityResult, ...]
    comparisons: tuple[ModalityComparisonResult, ...]

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


def analyze_mrmc(
    data: MRMCData,
    *,
    covariance: CovarianceMethod = "unbiased",
    confidence_level: float = 0.95,
    integer_df: bool = False,
) -> MRMCResult:
    options = dict(covariance=covariance, confidence_level=confidence_level, integer_df=integer_df)
    singles = tuple(analyze_single_modality(data, m, **options) for m in data.modalities)
    pairs = tuple(
        compare_modalities(data, a, b, **options)
        for i, a in enumerate(data.modalities)
        for b in data.modalities[i + 1 :]
    )
    return MRMCResult(modalities=singles, comparisons=pairs)


# --------------------------------------------------------------------------------------------------------
# Two arms with their own positives and shared negatives (partially paired)
# --------------------------------------------------------------------------------------------------------
#
# In a reader study of generators, arm A is (real cases + A's synthetic cases) and arm B is (the same real
# cases + B's synthetic cases), read by the same readers. AUC_{arm,r} is the mean of the kernel over that arm's
# (positive, negative) pairs, so DeLong's linearisation still holds per arm:
#     AUC_{arm,r} − θ ≈ mean_i [V10_{arm,r}(i) − θ] + mean_j [V01_{arm,r}(j) − θ].
# Two AUCs covary only through the cases they share. Disjoint positives are independent samples, so
#     Cov(AUC_{A,r}, AUC_{B,s}) = Cov(V01_{A,r}(j), V01_{B,s}(j)) / n_neg,
# estimated (as DeLong does) by the sample covariance over the shared negatives; within one arm the usual
# DeLong covariance is kept. When both arms have the same positives this is DeLong's fully paired covariance,
# and the comparison equals compare_modalities(..., covariance="delong").

ARM_COVARIANCE_METHOD = "delong-partially-paired"


@dataclass(frozen=True, kw_only=True)
class ArmComparisonResult(ORHillisDifference):
    """Arm a − arm b for arms with their own positives and shared negatives (cov1: same reader, different arm,
    through the shared negatives and the positives when paired)."""

    arm_a: str
    arm_b: str
    readers: tuple[str, ...]
    reader_aucs_a: tuple[float, ...]
    reader_aucs_b: tuple[float, ...]
    n_positive_a: int
    n_positive_b: int
    n_negative: int
    positives_paired: bool  # True when both arms share their positives too (a fully crossed design)


def _structural_components(ratings: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's V10 (readers × positives: mean kernel over negatives) and V01 (readers × negatives)."""
    psi = auc_kernels(ratings, truth)
    return psi.mean(axis=2), psi.mean(axis=1)


def _sample_cross_covariance(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    # (k, n) and (l, n) rows over the same n cases → (k, l), divisor n − 1 as np.cov.
    x_centred = x - x.mean(axis=1, keepdims=True)
    y_centred = y - y.mean(axis=1, keepdims=True)
    return x_centred @ y_centred.T / (x.shape[1] - 1)


def _single_arm(data: MRMCData, name: str) -> np.ndarray:
    if len(data.modalities) != 1:
        raise DesignError(f"arm {name} must hold exactly one modality, has {list(data.modalities)}")
    return data.ratings[0]


def arm_auc_covariance(arm_a: MRMCData, arm_b: MRMCData) -> tuple[np.ndarray, np.ndarray, bool]:
    """AUCs (2, readers), their DeLong covariance (2·readers, 2·readers) and whether the positives are paired.

    Each arm is a one-modality MRMCData over the same readers. The arms must share their negative cases
    (by case id); their positives must be either entirely different cases or the same cases. A shared case
    may carry one reading used by both arms (a reader study) or one reading per arm (a fully crossed design).
    """
    ratings_a, ratings_b = _single_arm(arm_a, "a"), _single_arm(arm_b, "b")
    if arm_a.readers != arm_b.readers:
        only = sorted(set(arm_a.readers) ^ set(arm_b.readers))
        raise DesignError(f"both arms must be read by the same readers; differing: {only[:5] or 'order'}")
    truth_of = dict(zip(arm_a.cases, arm_a.truth))
    conflicting = sorted(c for c, t in zip(arm_b.cases, arm_b.truth) if c in truth_of and truth_of[c] != t)
    if conflicting:
        raise DesignError(f"cases with conflicting truth between the arms: {conflicting[:5]}")

    components = []  # per arm: {True: (V10, case ids), False: (V01, case ids)}
    for data, ratings in ((arm_a, ratings_a), (arm_b, ratings_b)):
        v10, v01 = _structural_components(ratings, data.truth)
        cases = np.asarray(data.cases)
        components.append({True: (v10, cases[data.truth]), False: (v01, cases[~data.truth])})

    negatives_a, negatives_b = components[0][False][1], components[1][False][1]
    if set(negatives_a) != set(negatives_b):
        raise DesignError(
            f"the arms must share their negative cases; {len(set(negatives_a) ^ set(negatives_b))} are in one arm only"
        )
    positives_a, positives_b = set(components[0][True][1]), set(components[1][True][1])
    if positives_a & positives_b and positives_a != positives_b:
        raise DesignError(
            f"the arms' positive cases must be all different or all the same; {len(positives_a & positives_b)} of "
            f"{len(positives_a)}/{len(positives_b)} are shared"
        )
    paired = positives_a == positives_b

    n_readers = len(arm_a.readers)
    aucs = np.stack([components[0][True][0].mean(axis=1), components[1][True][0].mean(axis=1)])
    cov = np.zeros((2 * n_readers, 2 * n_readers))
    for a in (0, 1):
        for b in (0, 1):
            block = cov[a * n_readers : (a + 1) * n_readers, b * n_readers : (b + 1) * n_readers]
            for positive in (True, False):
                if a != b and positive and not paired:
                    continue  # different positive cases: independent, no covariance
                values_a, cases_a = components[a][positive]
                values_b, cases_b = components[b][positive]
                order = {case: k for k, case in enumerate(cases_b)}
                aligned_b = values_b[:, [order[case] for case in cases_a]]
                block += _sample_cross_covariance(values_a, aligned_b) / len(cases_a)
    return aucs, (cov + cov.T) / 2, paired


def compare_arms(
    arm_a: MRMCData,
    arm_b: MRMCData,
    *,
    confidence_level: float = 0.95,
    integer_df: bool = False,
) -> ArmComparisonResult:
    """OR-Hillis comparison of two arms read by the same readers: own positives, shared negatives.

    Each arm is a one-modality MRMCData named after the arm (``mrmc_data_from_table`` on that arm's readings:
    its positives plus the shared negatives). The covariances are DeLong's structural components over the
    cases the AUCs share (see arm_auc_covariance); the OR-Hillis formulas are those of compare_modalities.
    """
    for data in (arm_a, arm_b):
        _check_common(data, confidence_level)
    name_a, name_b = arm_a.modalities[0], arm_b.modalities[0]
    if name_a == name_b:
        raise ValueError(f"compare two different arms (both are named {name_a!r})")
    aucs, cov, paired = arm_auc_covariance(arm_a, arm_b)
    return ArmComparisonResult(
        arm_a=name_a,
        arm_b=name_b,
        readers=arm_a.readers,
        reader_aucs_a=tuple(float(x) for x in aucs[0]),
        reader_aucs_b=tuple(float(x) for x in aucs[1]),
        **_or_hillis_difference(aucs, cov, confidence_level, integer_df),
        covariance_method=ARM_COVARIANCE_METHOD,
        confidence_level=confidence_level,
        integer_df=integer_df,
        n_readers=len(arm_a.readers),
        n_positive_a=int(arm_a.truth.sum()),
        n_positive_b=int(arm_b.truth.sum()),
        n_negative=int((~arm_a.truth).sum()),
        positives_paired=paired,
    )
