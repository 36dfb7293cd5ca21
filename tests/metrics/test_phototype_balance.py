"""Balance of a set's Fitzpatrick distribution against a target: hand-computed values and scipy references."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from metrics.phototype_balance import count_phototypes, score_balance

# 100 images: I 10, II 20, III 30, IV 20, V 10, VI 10, against uniform (1/6 each).
EXAMPLE = {1: 10, 2: 20, 3: 30, 4: 20, 5: 10, 6: 10}


def test_distances_against_uniform_match_hand_computation():
    score = score_balance(EXAMPLE, seed=1)
    # |p - 1/6| = 1/15, 1/30, 2/15, 1/30, 1/15, 1/15 -> sum 0.4 -> TVD 0.2
    assert score.total_variation == pytest.approx(0.2)
    # KL = 0.3 ln(0.6) + 0.4 ln(1.2) + 0.3 ln(1.8)
    assert score.kl_divergence == pytest.approx(0.3 * math.log(0.6) + 0.4 * math.log(1.2) + 0.3 * math.log(1.8))
    # CDFs 0.1 0.3 0.6 0.8 0.9 vs 1/6 2/6 3/6 4/6 5/6 -> |differences| sum to 0.4 types
    assert score.earth_movers == pytest.approx(0.4)
    entropy = -(3 * 0.1 * math.log(0.1) + 2 * 0.2 * math.log(0.2) + 0.3 * math.log(0.3))
    assert score.pielou_evenness == pytest.approx(entropy / math.log(6))
    # (o - e)^2 / e with e = 100/6: (3 * (20/3)^2 + 2 * (10/3)^2 + (40/3)^2) / (50/3) = 20
    assert score.chi_square == pytest.approx(20.0)
    assert score.chi_square_dof == 5
    assert score.chi_square_p == pytest.approx(stats.chi2.sf(20.0, 5))
    assert score.warnings == []


def test_distances_agree_with_scipy():
    p = np.array(list(EXAMPLE.values())) / 100
    q = np.array([0.3, 0.3, 0.2, 0.1, 0.05, 0.05])
    score = score_balance(EXAMPLE, dict(zip(range(1, 7), q)))
    types = np.arange(1, 7)
    assert score.earth_movers == pytest.approx(stats.wasserstein_distance(types, types, p, q))
    assert score.kl_divergence == pytest.approx(stats.entropy(p, q))
    assert score.chi_square == pytest.approx(stats.chisquare(p * 100, q * 100).statistic)
    assert score.target_name == "custom"


def test_a_perfectly_uniform_set_scores_zero_distance_and_full_evenness():
    score = score_balance({t: 7 for t in range(1, 7)})
    assert score.total_variation == pytest.approx(0.0)
    assert score.kl_divergence == pytest.approx(0.0)
    assert score.earth_movers == pytest.approx(0.0)
    assert score.pielou_evenness == pytest.approx(1.0)
    assert score.chi_square_p == pytest.approx(1.0)


def test_bootstrap_interval_covers_the_estimate_and_is_reproducible():
    first = score_balance(EXAMPLE, seed=3)
    again = score_balance(EXAMPLE, seed=3)
    assert first.total_variation_ci == again.total_variation_ci
    low, high = first.total_variation_ci
    assert low < first.total_variation < high
    low, high = first.earth_movers_ci
    assert low < first.earth_movers < high


def test_labels_and_counts_give_the_same_score_and_undetermined_is_kept_apart():
    labels = ["I"] * 3 + [2] * 5 + [3.0] * 2 + [None, float("nan"), "undetermined"]
    counts, undetermined = count_phototypes(labels)
    assert counts == {1: 3, 2: 5, 3: 2, 4: 0, 5: 0, 6: 0} and undetermined == 3
    from_labels = score_balance(labels, seed=0)
    from_counts = score_balance({"I": 3, "II": 5, "III": 2, "undetermined": 3}, seed=0)
    assert from_labels == from_counts
    assert from_labels.n_total == 13 and from_labels.undetermined_share == pytest.approx(3 / 13)
    assert any("undetermined" in w for w in from_labels.warnings)


def test_small_expected_counts_warn_and_get_a_monte_carlo_p_value():
    score = score_balance({1: 4, 2: 5, 3: 3}, seed=0)  # 12 images: expected 2 per type
    assert any("expected counts are below 5" in w for w in score.warnings)
    assert 0 < score.chi_square_p_monte_carlo <= 1


def test_monte_carlo_p_value_agrees_with_the_asymptotic_one_when_counts_are_large():
    score = score_balance(EXAMPLE, seed=0, n_boot=4000)
    assert score.chi_square_p_monte_carlo == pytest.approx(score.chi_square_p, abs=0.005)


def test_reference_target_uses_a_homogeneity_test_on_both_samples():
    reference = {1: 5, 2: 40, 3: 30, 4: 15, 5: 7, 6: 3}
    score = score_balance(EXAMPLE, "reference", reference=reference)
    table = np.array([list(EXAMPLE.values()), list(reference.values())])
    expected = stats.chi2_contingency(table, correction=False)
    assert score.chi_square_test == "homogeneity"
    assert score.chi_square == pytest.approx(expected.statistic)
    assert score.chi_square_p == pytest.approx(expected.pvalue)
    assert score.target == {t: c / 100 for t, c in reference.items()}


def test_a_type_the_target_excludes_makes_kl_infinite():
    score = score_balance(EXAMPLE, {1: 1, 2: 1, 3: 1, 4: 1, 5: 1})  # target gives VI nothing
    assert math.isinf(score.kl_divergence)
    assert math.isinf(score.chi_square)
    stored = json.loads(json.dumps(score.to_dict(), allow_nan=False))
    assert stored["kl_divergence"] is None and any("KL divergence is infinite" in w for w in stored["warnings"])


def test_rejects_unusable_input():
    with pytest.raises(ValueError):
        score_balance({None: 5})
    with pytest.raises(ValueError):
        score_balance(EXAMPLE, "reference")
    with pytest.raises(ValueError):
        score_balance(EXAMPLE, [1, 2, 3])


def test_pad_ufes_20_labels_are_far_from_uniform(pad_dir):
    labels = pd.read_csv(pad_dir / "labels.csv")["fitzpatrick"].tolist()
    score = score_balance(labels)
    # Counts documented with the data set.
    assert score.counts == {1: 21, 2: 147, 3: 79, 4: 17, 5: 3, 6: 0}
    assert score.n_undetermined == 145
    p = np.array([21, 147, 79, 17, 3, 0]) / 267
    assert score.total_variation == pytest.approx(0.5 * np.abs(p - 1 / 6).sum())
    assert score.chi_square_p < 1e-6
    assert score.total_variation_ci[0] > 0.4  # dark skin is scarce: that is what the audit must show
    assert score.to_dict()["counts"]["6"] == 0
