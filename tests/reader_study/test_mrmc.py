"""MRMC reader-averaged AUC: published iMRMC values, a hand-computed example, estimator identities, design checks."""
from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from reader_study.mrmc import (
    DesignError,
    analyze_mrmc,
    analyze_single_modality,
    auc_covariance,
    compare_modalities,
    empirical_auc,
    mrmc_data_from_table,
)


@pytest.fixture(scope="module")
def imrmc(mrmc_csv):
    return mrmc_data_from_table(pd.read_csv(mrmc_csv), modality_col="treatment")


def assert_matches_printed(value: float, printed: str) -> None:
    # Equal to the published number to its last printed digit (within half a unit of it).
    decimals = len(printed.split(".")[1])
    assert abs(value - float(printed)) <= 0.5 * 10.0**-decimals, (value, printed)


# ---------------------------------------------------------------------------------------------- iMRMC reference

@pytest.mark.parametrize(
    "modality, auc, variance, df",
    [("testA", "0.704375", "0.00631393024", "6.85458885"), ("testB", "0.7585", "0.00237205276", "35.0001533")],
)
def test_unbiased_estimator_reproduces_published_imrmc_values(imrmc, modality, auc, variance, df):
    result = analyze_single_modality(imrmc, modality, covariance="unbiased")
    assert (len(result.readers), result.n_positive, result.n_negative) == (5, 40, 40)
    assert_matches_printed(result.auc, auc)
    assert_matches_printed(result.variance, variance)
    assert_matches_printed(result.df, df)


def test_imrmc_printed_ci_is_reproduced_with_t_at_floor_df(imrmc):
    result = analyze_single_modality(imrmc, "testA", covariance="unbiased", integer_df=True)
    assert_matches_printed(result.ci_low, "0.509942789")
    assert_matches_printed(result.ci_high, "0.898807211")
    # The fractional Hillis df (the default) gives a slightly narrower interval.
    fractional = analyze_single_modality(imrmc, "testA", covariance="unbiased")
    assert fractional.ci_low > result.ci_low and fractional.ci_high < result.ci_high
    assert fractional.df == result.df


@pytest.mark.parametrize("method", ["delong", "jackknife"])
def test_delong_and_jackknife_are_close_to_but_not_the_published_variance(imrmc, method):
    result = analyze_single_modality(imrmc, "testA", covariance=method)
    relative = result.variance / 0.00631393024 - 1
    # Measured: DeLong +0.023 %, jackknife +0.33 % (the README says "about 0.2–0.5 %").
    assert 1e-5 < abs(relative) < 5e-3
    assert result.auc == pytest.approx(0.704375, abs=1e-12)


# ---------------------------------------------------------------------------------------------- hand-computed

# Two readers, four cases: positives P1, P2 and negatives N1, N2.
#   reader 1: P1=4 P2=2 N1=3 N2=1  -> kernel rows P, cols N: [[1, 1], [0, 1]]     AUC = 3/4
#   reader 2: P1=5 P2=3 N1=2 N2=3  -> kernel                 [[1, 1], [1, 0.5]]   AUC = 3.5/4 = 0.875
# DeLong: V10 (row means) r1 [1, .5], r2 [1, .75]; V01 (column means) r1 [.5, 1], r2 [1, .75].
#   var1 = var([1,.5])/2 + var([.5,1])/2 = .125/2 + .125/2 = .125
#   var2 = .03125/2 + .03125/2 = .03125
#   cov  = cov([1,.5],[1,.75])/2 + cov([.5,1],[1,.75])/2 = .0625/2 - .0625/2 = 0
# Unbiased: cov = AUC_a AUC_b - sum over case-disjoint kernel pairs / (2·1·2·1):
#   var1 = .75²  - (2·1·1 + 2·1·0)/4     = .5625  - .5   = .0625
#   var2 = .875² - (2·1·.5 + 2·1·1)/4    = .765625 - .75 = .015625
#   cov  = .75·.875 - (1·.5 + 1·1 + 0·1 + 1·1)/4 = .65625 - .625 = .03125
# Jackknife (all 4 cases): reader 1 leave-one-out AUCs (-P1, -P2, -N1, -N2) = .5, 1, 1, .5
#   var1 = 3/4 · 4 · .25² = .1875
# OR single modality, unbiased: MS(R) = var([.75,.875]) = .0078125, Cov2 = .03125
#   variance = MS(R)/2 + Cov2 = .03515625;  df = (MS(R) + 2 Cov2)² / MS(R)² · (2-1) = (.0703125/.0078125)² = 81
# With DeLong, Cov2 = 0: variance = .00390625, df = 1.
HAND_RATINGS = np.array([[4, 2, 3, 1], [5, 3, 2, 3]], dtype=float)
HAND_TRUTH = np.array([True, True, False, False])


def hand_table() -> pd.DataFrame:
    rows = [
        {
            "reader": f"r{r + 1}",
            "modality": "m",
            "case": f"c{c}",
            "truth": int(HAND_TRUTH[c]),
            "rating": HAND_RATINGS[r, c],
        }
        for r in range(2)
        for c in range(4)
    ]
    return pd.DataFrame(rows)


def test_hand_computed_aucs_and_covariances():
    aucs, delong = auc_covariance(HAND_RATINGS, HAND_TRUTH, "delong")
    np.testing.assert_allclose(aucs, [0.75, 0.875], atol=1e-15)
    np.testing.assert_allclose(delong, [[0.125, 0.0], [0.0, 0.03125]], atol=1e-15)
    _, unbiased = auc_covariance(HAND_RATINGS, HAND_TRUTH, "unbiased")
    np.testing.assert_allclose(unbiased, [[0.0625, 0.03125], [0.03125, 0.015625]], atol=1e-15)
    _, jackknife = auc_covariance(HAND_RATINGS, HAND_TRUTH, "jackknife")
    assert jackknife[0, 0] == pytest.approx(0.1875, abs=1e-15)


def test_hand_computed_or_hillis_single_modality():
    data = mrmc_data_from_table(hand_table())
    unbiased = analyze_single_modality(data, "m", covariance="unbiased")
    assert (unbiased.auc, unbiased.ms_reader, unbiased.cov2) == pytest.approx((0.8125, 0.0078125, 0.03125), abs=1e-15)
    assert unbiased.variance == pytest.approx(0.03515625, abs=1e-15)
    assert unbiased.df == pytest.approx(81.0, rel=1e-12)
    half = stats.t.ppf(0.975, 81) * math.sqrt(0.03515625)
    assert (unbiased.ci_low, unbiased.ci_high) == pytest.approx((0.8125 - half, 0.8125 + half), abs=1e-12)
    delong = analyze_single_modality(data, "m", covariance="delong")
    assert (delong.variance, delong.df) == pytest.approx((0.00390625, 1.0), abs=1e-12)


# ---------------------------------------------------------------------------------------------- estimator identities

def test_empirical_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(3)
    truth = rng.random(60) < 0.4
    rating = rng.integers(1, 6, size=60).astype(float) + truth  # 1–6 scale: many ties
    assert empirical_auc(truth, rating) == pytest.approx(roc_auc_score(truth, rating), abs=1e-15)


def test_delong_equals_truth_stratified_jackknife_and_jackknife_equals_brute_force():
    rng = np.random.default_rng(7)
    truth = np.array([True] * 7 + [False] * 9)
    ratings = rng.integers(0, 4, size=(3, 16)).astype(float) + truth  # 3 readers, ties included
    _, delong = auc_covariance(ratings, truth, "delong")
    _, jackknife = auc_covariance(ratings, truth, "jackknife")

    def loo_aucs(keep_cases):
        return np.array([[roc_auc_score(truth[keep], row[keep]) for keep in keep_cases] for row in ratings])

    everyone = np.arange(16)
    loo = loo_aucs([everyone != k for k in everyone])  # (3 readers, 16 left-out cases)
    centred = loo - loo.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(jackknife, 15 / 16 * centred @ centred.T, atol=1e-14)
    stratified = np.zeros((3, 3))
    for stratum in (np.flatnonzero(truth), np.flatnonzero(~truth)):
        part = loo[:, stratum] - loo[:, stratum].mean(axis=1, keepdims=True)
        stratified += (stratum.size - 1) / stratum.size * part @ part.T
    np.testing.assert_allclose(delong, stratified, atol=1e-14)


def test_unbiased_covariance_is_unbiased_by_exact_enumeration():
    # Cases are drawn with replacement from small populations, so every sample of 2 positives and 3 negatives
    # is equally likely: the estimator averaged over all 3²·3³ samples must equal the exact covariance.
    positives = np.array([[3.0, 1.0], [1.0, 2.0], [2.0, 2.0]])  # (population case, reader)
    negatives = np.array([[1.0, 1.0], [2.5, 0.0], [0.0, 3.0]])
    truth = np.array([True, True, False, False, False])
    aucs, estimates = [], {"unbiased": [], "delong": []}
    for pos in itertools.product(range(3), repeat=2):
        for neg in itertools.product(range(3), repeat=3):
            ratings = np.concatenate([positives[list(pos)], negatives[list(neg)]]).T  # (reader, case)
            for method in estimates:
                sample_aucs, cov = auc_covariance(ratings, truth, method)
                estimates[method].append(cov)
            aucs.append(sample_aucs)
    exact = np.cov(np.array(aucs).T, bias=True)
    np.testing.assert_allclose(np.mean(estimates["unbiased"], axis=0), exact, atol=1e-14)
    # DeLong is biased upwards for variances; this shows the enumeration can tell the estimators apart.
    assert np.mean(estimates["delong"], axis=0)[0, 0] > exact[0, 0] + 1e-3


def test_comparison_equals_single_modality_analysis_of_reader_differences(imrmc):
    # For two modalities the OR-Hillis test is a single-modality analysis of d_j = AUC_Aj - AUC_Bj:
    # MS(d) = 2 MS(T×R) and Cov2(d) = 2 (Cov2 - Cov3).
    result = compare_modalities(imrmc, "testA", "testB", covariance="unbiased")
    ratings = np.concatenate([imrmc.ratings[0], imrmc.ratings[1]])
    aucs, cov = auc_covariance(ratings, imrmc.truth, "unbiased")
    contrast = np.hstack([np.eye(5), -np.eye(5)])
    d, cov_d = contrast @ aucs, contrast @ cov @ contrast.T
    ms_d, cov2_d = d.var(ddof=1), cov_d[~np.eye(5, dtype=bool)].mean()
    assert result.difference == pytest.approx(d.mean(), abs=1e-15)
    assert result.standard_error**2 == pytest.approx(ms_d / 5 + cov2_d, rel=1e-12)
    assert result.df == pytest.approx((ms_d + 5 * cov2_d) ** 2 / (ms_d**2 / 4), rel=1e-12)
    assert result.f_statistic == pytest.approx((result.difference / result.standard_error) ** 2, rel=1e-12)
    assert result.p_value == pytest.approx(2 * stats.t.sf(abs(result.difference) / result.standard_error, result.df))
    swapped = compare_modalities(imrmc, "testB", "testA", covariance="unbiased")
    assert swapped.difference == pytest.approx(-result.difference) and swapped.p_value == pytest.approx(result.p_value)


def test_full_analysis_is_json_serialisable(imrmc):
    result = analyze_mrmc(imrmc, covariance="delong")
    assert [m.modality for m in result.modalities] == ["testA", "testB"]
    assert len(result.comparisons) == 1
    decoded = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert decoded["modalities"][0]["covariance_method"] == "delong"
    assert decoded["comparisons"][0]["modality_a"] == "testA"


# ---------------------------------------------------------------------------------------------- design validation

def test_missing_reading_is_rejected_as_not_fully_crossed():
    table = hand_table().drop(index=5)
    with pytest.raises(DesignError, match=r"not fully crossed: 1 of 8 .*\('m', 'r2', 'c1'\)"):
        mrmc_data_from_table(table)


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda t: pd.concat([t, t.iloc[[0]]]), "duplicate readings"),
        (lambda t: t.assign(truth=[1, 1, 0, 0, 1, 1, 0, 1]), "conflicting truth"),
        (lambda t: t.assign(rating=t.rating.where(t.index != 2, np.nan)), "finite"),
        (lambda t: t.assign(truth=t.truth * 2), "truth must be 0/1"),
        (lambda t: t.drop(columns="case"), "lacks columns"),
        (lambda t: t.assign(truth=[1, 0, 0, 0] * 2), "≥ 2 positive"),
    ],
)
def test_unusable_tables_raise_design_error(corrupt, message):
    with pytest.raises(DesignError, match=message):
        mrmc_data_from_table(corrupt(hand_table()))


def test_random_reader_analysis_needs_two_readers():
    data = mrmc_data_from_table(hand_table().query("reader == 'r1'"))
    with pytest.raises(DesignError, match="at least 2 readers"):
        analyze_single_modality(data, "m")
