"""Intervals of the utility test against reference implementations: DeLong against reader_study.mrmc's DeLong
covariance, the Nadeau-Bengio interval against scipy's t interval (to which it reduces without the correction)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from metrics.utility.inference import (
    bootstrap_interval,
    cluster_bootstrap_weights,
    nadeau_bengio_interval,
    paired_delong,
)
from reader_study.mrmc import auc_covariance


def test_paired_delong_matches_the_mrmc_delong_covariance():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 150).astype(bool)
    a = rng.normal(truth * 0.7, 1.0)
    b = a + rng.normal(truth * 0.3, 0.5)
    result = paired_delong(truth, a, b)
    aucs, covariance = auc_covariance(np.vstack([a, b]), truth, method="delong")
    assert result.auc_a == pytest.approx(aucs[0]) and result.auc_b == pytest.approx(aucs[1])
    se = np.sqrt(covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1])
    assert result.ci.high - result.difference == pytest.approx(stats.norm.ppf(0.975) * se)
    assert result.p_value == pytest.approx(2 * stats.norm.sf(abs(aucs[1] - aucs[0]) / se))


def test_nadeau_bengio_without_correction_is_the_t_interval_and_widens_with_it():
    values = np.random.default_rng(1).normal(0.02, 0.03, 25)
    plain = nadeau_bengio_interval(values, test_train_ratio=0.0)
    low, high = stats.t.interval(0.95, df=24, loc=values.mean(), scale=stats.sem(values))
    assert (plain.low, plain.high) == pytest.approx((low, high))
    corrected = nadeau_bengio_interval(values, test_train_ratio=0.5)
    ratio = (corrected.high - corrected.low) / (plain.high - plain.low)
    assert ratio == pytest.approx(np.sqrt((1 / 25 + 0.5) / (1 / 25)))


def test_cluster_bootstrap_resamples_whole_groups_and_keeps_both_classes():
    groups = ["a", "a", "b", "c", "c", "c", "d", "e"]
    labels = np.array([0, 0, 1, 0, 0, 0, 1, 0])
    weights = cluster_bootstrap_weights(groups, 300, np.random.default_rng(2), labels=labels)
    assert weights.shape == (300, 8)
    assert (weights[:, 0] == weights[:, 1]).all() and (weights[:, 3] == weights[:, 5]).all()
    groups_drawn = weights[:, [0, 2, 3, 6, 7]].sum(axis=1)
    assert (groups_drawn == 5).all()  # as many groups drawn as there are
    assert ((weights * (labels == 1)).sum(axis=1) > 0).all() and ((weights * (labels == 0)).sum(axis=1) > 0).all()


def test_bootstrap_interval_ignores_undefined_replicates():
    interval = bootstrap_interval(np.r_[np.linspace(0, 1, 101), np.nan])
    assert (interval.low, interval.high, interval.n_resamples) == pytest.approx((0.025, 0.975, 101))
