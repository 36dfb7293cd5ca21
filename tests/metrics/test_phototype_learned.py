"""The learned phototype estimator: equal to its reference implementations, storable, and honestly cross-validated."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from statsmodels.miscmodels.ordinal_model import OrderedModel

from metrics.phototype import PhototypeEstimate
from metrics.phototype_learned import (
    LearnedPhototypeEstimator,
    colour_statistics,
    cross_validated_predictions,
)
from metrics.phototype_validation import agreement_report


def _signal_data(n_patients: int = 60, per_patient: int = 4, dim: int = 64, seed: int = 0):
    """Types cut from a latent skin darkness that three of the feature columns (and one colour column) carry."""
    rng = np.random.default_rng(seed)
    n = n_patients * per_patient
    latent = rng.normal(size=n)
    labels = np.digitize(latent, [-1.2, -0.4, 0.4, 1.2]) + 1
    features = rng.normal(size=(n, dim))
    features[:, :3] += latent[:, None]
    colour = np.column_stack([60 - 5 * latent + rng.normal(size=n), rng.normal(size=n)])
    groups = np.repeat(np.arange(n_patients), per_patient)
    return features, colour, labels, groups


def test_ordinal_probabilities_equal_statsmodels_ordered_model():
    features, colour, labels, _ = _signal_data()
    estimator = LearnedPhototypeEstimator(model="ordinal", n_components=5).fit(features, labels, colour)
    design = estimator.design_matrix(features, colour)
    reference = OrderedModel(labels, design, distr="logit").fit(method="bfgs", disp=False, maxiter=2000)
    np.testing.assert_allclose(estimator.predict_proba(features, colour), reference.predict(), atol=1e-6)
    assert estimator.state["converged"]


def test_multinomial_probabilities_equal_sklearn():
    features, colour, labels, _ = _signal_data()
    estimator = LearnedPhototypeEstimator(model="multinomial", n_components=8, regularisation=0.5)
    estimator.fit(features, labels, colour)
    design = estimator.design_matrix(features, colour)
    reference = LogisticRegression(C=0.5, max_iter=5000).fit(design, labels)
    np.testing.assert_allclose(estimator.predict_proba(features, colour), reference.predict_proba(design), atol=1e-6)


def test_prediction_is_the_median_of_the_predictive_distribution():
    features, colour, labels, _ = _signal_data()
    estimator = LearnedPhototypeEstimator(model="ordinal", n_components=5).fit(features, labels, colour)
    proba = estimator.predict_proba(features, colour)
    cumulative = np.cumsum(proba, axis=1)
    predictions = estimator.predict(features, colour)
    index = np.searchsorted(estimator.classes, predictions)
    assert np.all(cumulative[np.arange(len(index)), index] >= 0.5 - 1e-9)
    below = np.where(index > 0, cumulative[np.arange(len(index)), np.maximum(index - 1, 0)], 0.0)
    assert np.all(below < 0.5)


@pytest.mark.parametrize("model", ["ordinal", "multinomial"])
def test_round_trips_through_json(model):
    features, colour, labels, _ = _signal_data()
    estimator = LearnedPhototypeEstimator(model=model, n_components=6, metadata={"extractor_id": "test"})
    estimator.fit(features, labels, colour)
    stored = json.loads(json.dumps(estimator.to_dict()))
    restored = LearnedPhototypeEstimator.from_dict(stored)
    np.testing.assert_array_equal(restored.predict(features, colour), estimator.predict(features, colour))
    np.testing.assert_allclose(restored.predict_proba(features, colour), estimator.predict_proba(features, colour))
    assert restored.metadata == {"extractor_id": "test"} and restored.method == f"learned-{model}/v1"
    with pytest.raises(ValueError):
        LearnedPhototypeEstimator.from_dict({**stored, "format": "something else"})


@pytest.mark.slow
def test_learns_a_real_signal_under_patient_grouped_cross_validation():
    features, colour, labels, groups = _signal_data()
    predictions = cross_validated_predictions(
        features, labels, groups, colour_stats=colour, model="ordinal", n_components=5
    )
    report = agreement_report(labels, predictions, groups, n_boot=500, n_permutations=100)
    assert report.validated, report.gate


@pytest.mark.slow
def test_grouped_cross_validation_does_not_leak_patient_identity():
    # Features identify the patient (near-identical photos), labels are random per patient: there is nothing to
    # learn about phototype, only patients to recognise. Image-level folds reward recognition; grouped folds must not.
    rng = np.random.default_rng(0)
    n_patients, per_patient = 60, 4
    patient_labels = rng.choice([1, 2, 3, 4, 5], size=n_patients, p=[0.1, 0.35, 0.3, 0.15, 0.1])
    labels = np.repeat(patient_labels, per_patient)
    groups = np.repeat(np.arange(n_patients), per_patient)
    features = np.repeat(rng.normal(size=(n_patients, 64)), per_patient, axis=0)
    features += 0.05 * rng.normal(size=features.shape)
    params = dict(model="multinomial", n_components=40, regularisation=100.0)

    leaky = np.zeros_like(labels)
    for train, test in KFold(5, shuffle=True, random_state=0).split(features):
        leaky[test] = LearnedPhototypeEstimator(**params).fit(features[train], labels[train]).predict(features[test])
    assert agreement_report(labels, leaky, groups, n_boot=300, n_permutations=50).validated  # the trap is real

    grouped = cross_validated_predictions(features, labels, groups, **params)
    assert not agreement_report(labels, grouped, groups, n_boot=300, n_permutations=50).validated


def test_colour_statistics_keep_undetermined_colours_and_mark_missing_ones():
    measured = PhototypeEstimate(None, None, 900, "colour cast", "ita/v1", 0.4, (70.0, 3.0, -4.0), 2000)
    missing = PhototypeEstimate(None, None, 10, "too few skin pixels", "ita/v1", 0.005, None, 2000)
    stats_matrix = colour_statistics([measured, missing])
    assert stats_matrix.shape == (2, 5)
    np.testing.assert_allclose(stats_matrix[0], [70.0, 3.0, -4.0, np.degrees(np.arctan2(20.0, -4.0)), 0.4])
    assert np.isnan(stats_matrix[1, :4]).all() and stats_matrix[1, 4] == pytest.approx(0.005)


def test_missing_colour_values_are_imputed_and_shapes_are_checked():
    features, colour, labels, _ = _signal_data()
    colour[::7, 0] = np.nan
    estimator = LearnedPhototypeEstimator(n_components=4).fit(features, labels, colour)
    assert np.isfinite(estimator.predict_proba(features, colour)).all()
    with pytest.raises(ValueError, match="columns"):
        estimator.predict(features[:, :10], colour)
    with pytest.raises(ValueError, match="columns"):
        estimator.predict(features, None)
    with pytest.raises(ValueError):
        LearnedPhototypeEstimator().fit(features, np.where(labels == 1, 0, labels))
