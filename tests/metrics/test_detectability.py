"""Detectability as a cross-fitted classifier two-sample test (metrics/detectability.py), on real image features."""
from __future__ import annotations

import numpy as np
import pytest

import metrics.detectability as detectability
from metrics.detectability import auc_interval, crossfit_folds, probe_detectability
from metrics.results import InsufficientSamplesError
from reader_study.mrmc import auc_covariance


def test_auc_interval_is_delong_as_the_reader_study_computes_it():
    rng = np.random.default_rng(3)
    labels = np.r_[np.zeros(70, int), np.ones(50, int)]
    scores = np.round(rng.normal(size=120) + 0.8 * labels, 1)  # rounded: ties must count half in both
    auc, ci = auc_interval(labels, scores)
    aucs, cov = auc_covariance(scores[None, :], labels.astype(bool), method="delong")
    assert auc == pytest.approx(aucs[0], abs=1e-12)
    half = 1.959963984540054 * np.sqrt(cov[0, 0])
    assert (ci.low, ci.high) == pytest.approx((aucs[0] - half, aucs[0] + half), abs=1e-12)


def test_folds_are_stratified_grouped_and_reproducible():
    labels = np.r_[np.zeros(60, int), np.ones(40, int)]
    groups = [f"lesion-{i // 3}" for i in range(60)] + [f"gen-{i}" for i in range(40)]
    fold_of = crossfit_folds(labels, groups, folds=5, seed=7)
    assert set(fold_of) == set(range(5))
    for fold in range(5):
        assert 0 < labels[fold_of == fold].sum() < (fold_of == fold).sum()  # both classes in every test fold
    by_group: dict[str, set] = {}
    for group, fold in zip(groups, fold_of):
        by_group.setdefault(group, set()).add(int(fold))
    assert all(len(folds) == 1 for folds in by_group.values())  # no lesion on both sides of a fold
    assert np.array_equal(fold_of, crossfit_folds(labels, groups, folds=5, seed=7))
    with pytest.raises(InsufficientSamplesError, match="at least 10 images of each class"):
        crossfit_folds(np.r_[np.zeros(30, int), np.ones(4, int)])


def test_no_image_is_scored_by_a_model_that_trained_on_it(monkeypatch, isic_reference, pad_features):
    fitted: list[set[bytes]] = []
    original = detectability.StandardScaler.fit

    def spy(self, X, y=None, **kwargs):
        fitted.append({row.tobytes() for row in np.asarray(X)})
        return original(self, X, y, **kwargs)

    monkeypatch.setattr(detectability.StandardScaler, "fit", spy)
    result = probe_detectability(isic_reference.features, pad_features.features, n_permutations=0, folds=5, seed=1)
    rows = np.vstack([isic_reference.features, pad_features.features]).astype(np.float64)
    fold_of = np.asarray(result.fold_of)
    assert len(fitted) == 5
    for fold, training in enumerate(fitted):
        tested = {row.tobytes() for row in rows[fold_of == fold]}
        assert not tested & training
        assert len(training) == int(np.sum(fold_of != fold))


def test_another_domain_is_detected_and_a_random_real_split_is_not(isic_reference, pad_features):
    other = probe_detectability(isic_reference.features, pad_features.features, n_permutations=20, seed=0)
    assert other.distinguishable and other.auc > 0.95 and other.ci.low > 0.9
    assert other.null_high < 0.7 and other.p_value <= 1 / 21

    rng = np.random.default_rng(0)
    order = rng.permutation(len(isic_reference.features))
    half = len(order) // 2
    same = probe_detectability(isic_reference.features[order[:half]], isic_reference.features[order[half:]],
                               n_permutations=20, seed=0)
    assert not same.distinguishable and same.ci.low <= 0.5 <= same.ci.high
    assert same.p_value > 0.05
    assert same.to_dict()["ci"]["method"] == "DeLong (1988) Wald interval"


def test_bad_features_are_refused():
    with pytest.raises(ValueError, match="same width"):
        probe_detectability(np.zeros((20, 4)), np.zeros((20, 5)))
    with pytest.raises(ValueError, match="NaN"):
        probe_detectability(np.full((20, 4), np.nan), np.zeros((20, 4)))
