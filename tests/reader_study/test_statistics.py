"""Per-reader statistics, kappas, quality ratings and diagnoses against hand values and reference libraries."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import cohen_kappa_score, roc_auc_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from reader_study.statistics import (
    cohen_kappa,
    cohen_kappa_with_ci,
    compare_likert_quality,
    diagnosis_agreement,
    empirical_auc,
    fleiss_kappa_across_readers,
    intra_reader_kappa,
    pairwise_cohen_kappa,
    reader_performance,
    signed_confidence,
    wilson_proportion,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def wilson_by_formula(successes: int, total: int, z: float = stats.norm.ppf(0.975)) -> tuple[float, float]:
    p = successes / total
    centre = (p + z**2 / (2 * total)) / (1 + z**2 / total)
    half = z / (1 + z**2 / total) * math.sqrt(p * (1 - p) / total + z**2 / (4 * total**2))
    return centre - half, centre + half


def test_statistics_import_without_django():
    code = "import sys, reader_study.statistics, reader_study.mrmc; assert 'django' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)


# ---------------------------------------------------------------------------------------------- per reader

def test_reader_performance_hand_example():
    # Truth (synthetic?) 1 1 0 0; calls 1 0 1 0 -> 2/4 correct, sensitivity 1/2, specificity 1/2.
    # Ratings = signed confidence: +4 -2 +3 -1 -> positives {4, -2}, negatives {3, -1}:
    # pairs 4>3, 4>-1, -2<3, -2<-1 -> AUC = 2/4. Exact binomial two-sided p for 2 of 4 at 0.5 is 1.
    result = reader_performance(
        [1, 1, 0, 0], [1, 0, 1, 0], signed_confidence([1, 0, 1, 0], [4, 2, 3, 1]), reader="r1"
    )
    assert (result.accuracy.successes, result.accuracy.total) == (2, 4)
    assert (result.accuracy.ci_low, result.accuracy.ci_high) == pytest.approx(wilson_by_formula(2, 4), abs=1e-12)
    assert result.sensitivity.estimate == 0.5 and result.specificity.estimate == 0.5
    assert result.binomial_p_value == pytest.approx(1.0)
    assert result.auc == 0.5
    # DeLong: V10 = [1, 0], V01 = [.5, .5] -> var = var([1,0])/2 + 0 = .25 -> SE .5; CI clipped to [0, 1].
    assert result.auc_standard_error == pytest.approx(0.5)
    assert (result.auc_ci_low, result.auc_ci_high) == (0.0, 1.0)


def test_reader_performance_against_reference_libraries():
    rng = np.random.default_rng(11)
    truth = rng.random(120) < 0.5
    rating = rng.integers(1, 6, size=120) * np.where(rng.random(120) < 0.7, np.where(truth, 1, -1), 1)
    called = rating > 0
    result = reader_performance(truth, called, rating, alternative="greater")
    correct = int((truth == called).sum())
    assert result.accuracy.estimate == correct / 120
    expected_ci = wilson_by_formula(correct, 120)
    assert (result.accuracy.ci_low, result.accuracy.ci_high) == pytest.approx(expected_ci, abs=1e-12)
    assert result.binomial_p_value == pytest.approx(stats.binom.sf(correct - 1, 120, 0.5), rel=1e-10)
    assert result.sensitivity.estimate == pytest.approx(called[truth].mean())
    assert result.specificity.estimate == pytest.approx((~called[~truth]).mean())
    assert result.auc == pytest.approx(roc_auc_score(truth, rating), abs=1e-15)
    assert result.auc_ci_low < result.auc < result.auc_ci_high


def test_reader_with_one_class_only_has_no_auc_and_serialises():
    result = reader_performance([1, 1, 1], [1, 0, 1], [3, -2, 5])
    assert math.isnan(result.auc) and result.specificity.total == 0
    as_json = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert as_json["auc"] is None and as_json["specificity"]["estimate"] is None


def test_signed_confidence_orders_belief_in_synthetic():
    ratings = signed_confidence([0, 0, 1, 1], [5, 1, 1, 5])
    assert list(ratings) == [-5, -1, 1, 5]
    assert empirical_auc([0, 0, 1, 1], ratings) == 1.0


def test_wilson_with_no_trials_is_undefined():
    assert math.isnan(wilson_proportion(0, 0).estimate)


# ---------------------------------------------------------------------------------------------- kappas

# Hand example: calls of two readers on four cases.
#   reader 1: 1 0 1 0, reader 2: 1 1 0 1 -> they agree on case 1 only: p_o = 1/4.
#   Cohen: marginals P(1) = 1/2 and 3/4 -> p_e = 1/2·3/4 + 1/2·1/4 = 1/2 -> kappa = (1/4 - 1/2) / (1/2) = -0.5
#   Fleiss: P̄ = 1/4; pooled category shares 5/8, 3/8 -> P_e = 34/64 -> kappa = (16/64 - 34/64) / (30/64) = -0.6
HAND_CALLS = {"r1": dict(zip("abcd", [1, 0, 1, 0])), "r2": dict(zip("abcd", [1, 1, 0, 1]))}


def test_kappa_hand_example():
    assert cohen_kappa([1, 0, 1, 0], [1, 1, 0, 1]) == pytest.approx(-0.5, abs=1e-15)
    fleiss = fleiss_kappa_across_readers(HAND_CALLS, n_bootstrap=50)
    assert fleiss.kappa == pytest.approx(-0.6, abs=1e-15)
    assert fleiss.observed_agreement == pytest.approx(0.25)


def test_cohen_kappa_matches_sklearn():
    rng = np.random.default_rng(5)
    a = rng.choice(["melanoma", "nevus", "bcc", "sk"], size=200)
    b = np.where(rng.random(200) < 0.6, a, rng.choice(["melanoma", "nevus", "bcc", "sk"], size=200))
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)
    assert math.isnan(cohen_kappa([1, 1, 1], [1, 1, 1]))  # chance agreement 1: undefined, not 0 or 1


def test_kappa_bootstrap_ci_is_seeded_and_covers_the_population_kappa():
    # Reader b copies reader a with probability q, else guesses with a's marginal p: population kappa = q.
    q, p, n = 0.6, 0.4, 100
    rng = np.random.default_rng(2024)
    covered, trials = 0, 200
    for trial in range(trials):
        a = rng.random(n) < p
        b = np.where(rng.random(n) < q, a, rng.random(n) < p)
        estimate = cohen_kappa_with_ci(a, b, n_bootstrap=400, seed=trial)
        covered += estimate.ci_low <= q <= estimate.ci_high
    assert 0.88 <= covered / trials <= 0.99  # nominal 0.95; binomial SE of the share ≈ 0.015
    again = cohen_kappa_with_ci(a, b, n_bootstrap=400, seed=trials - 1)
    assert (again.ci_low, again.ci_high) == (estimate.ci_low, estimate.ci_high)
    assert again.kappa == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)


def test_pairwise_kappa_uses_the_cases_both_readers_read():
    rng = np.random.default_rng(9)
    calls = {
        reader: {f"case{i}": int(rng.random() < 0.5) for i in range(40) if (i + offset) % 7 != 0}
        for offset, reader in enumerate(["ann", "bob", "cid"])
    }
    results = pairwise_cohen_kappa(calls, n_bootstrap=100)
    assert [(r.reader_a, r.reader_b) for r in results] == [("ann", "bob"), ("ann", "cid"), ("bob", "cid")]
    for r in results:
        shared = sorted(set(calls[r.reader_a]) & set(calls[r.reader_b]))
        expected = cohen_kappa_score([calls[r.reader_a][c] for c in shared], [calls[r.reader_b][c] for c in shared])
        assert r.estimate.n_items == len(shared) < 40
        assert r.estimate.kappa == pytest.approx(expected, abs=1e-12)


def test_fleiss_kappa_matches_statsmodels_on_shared_cases():
    rng = np.random.default_rng(4)
    truth = rng.integers(0, 3, size=60)
    calls = {
        f"r{j}": {i: int(t if rng.random() < 0.7 else rng.integers(0, 3)) for i, t in enumerate(truth)}
        for j in range(4)
    }
    del calls["r3"][0]  # case 0 is no longer read by everyone
    result = fleiss_kappa_across_readers(calls, n_bootstrap=300, seed=1)
    table, _ = aggregate_raters(np.array([[calls[r][i] for r in sorted(calls)] for i in range(1, 60)]))
    assert result.n_items == 59
    assert result.kappa == pytest.approx(fleiss_kappa(table), abs=1e-12)
    assert result.ci_low < result.kappa < result.ci_high and result.n_bootstrap_defined == 300


def test_intra_reader_kappa_compares_first_and_repeated_showing():
    first = ["real", "synthetic", "real", "real", "synthetic"]
    repeat = ["real", "synthetic", "synthetic", "real", "synthetic"]
    result = intra_reader_kappa(first, repeat, n_bootstrap=200, seed=3)
    assert result.kappa == pytest.approx(cohen_kappa_score(first, repeat))
    assert result.observed_agreement == pytest.approx(0.8)


# ---------------------------------------------------------------------------------------------- quality and diagnosis

def test_likert_difference_with_case_clustered_bootstrap():
    rng = np.random.default_rng(8)
    # 30 real and 30 synthetic images, each rated by 6 readers; strong per-image effects make ratings clustered.
    def ratings_for(mean):
        image_effect = rng.normal(0, 1.0, size=30)
        values = np.clip(np.rint(mean + image_effect[:, None] + rng.normal(0, 0.3, size=(30, 6))), 1, 5)
        return values.ravel(), np.repeat(np.arange(30), 6)
    real, real_cases = ratings_for(3.6)
    synthetic, synthetic_cases = ratings_for(3.0)
    by_case = compare_likert_quality(real, synthetic, real_cases=real_cases, synthetic_cases=synthetic_cases, seed=1)
    naive = compare_likert_quality(real, synthetic, seed=1)
    assert by_case.mean_difference == pytest.approx(synthetic.mean() - real.mean())
    assert by_case.ci_low < by_case.mean_difference < by_case.ci_high
    # Treating 180 ratings of 30 images as independent understates the uncertainty.
    assert (by_case.ci_high - by_case.ci_low) > 1.5 * (naive.ci_high - naive.ci_low)
    real_means, synthetic_means = real.reshape(30, 6).mean(axis=1), synthetic.reshape(30, 6).mean(axis=1)
    reference = stats.mannwhitneyu(synthetic_means, real_means, method="asymptotic")
    assert (by_case.mann_whitney_u, by_case.p_value) == pytest.approx((reference.statistic, reference.pvalue))
    both = np.r_[synthetic_means, real_means]
    assert by_case.probability_synthetic_higher == pytest.approx(empirical_auc(np.arange(60) < 30, both))
    assert (by_case.n_real_units, naive.n_real_units, by_case.unit) == (30, 180, "case")


def test_diagnosis_agreement_against_reference_labels():
    reference = ["mel", "nev", "bcc", "nev", "mel", "sk", "nev", "bcc"]
    chosen = ["mel", "nev", "nev", "nev", "bcc", "sk", "nev", "bcc"]
    result = diagnosis_agreement(reference, chosen, n_bootstrap=200)
    assert (result.accuracy.successes, result.accuracy.total) == (6, 8)
    assert result.kappa.kappa == pytest.approx(cohen_kappa_score(reference, chosen))
    assert set(result.labels) == {"mel", "nev", "bcc", "sk"}
    json.dumps(result.to_dict(), allow_nan=False)
