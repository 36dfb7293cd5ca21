"""The cross-fitted detector: no image is scored by a model that trained on it, a planted artefact is detected,
two halves of one real set are not, and a seed reproduces the scores bit for bit."""
from __future__ import annotations

import json

import numpy as np
import pytest

from deepfake_detector.crossfit import AUDIT_SCALE_MODEL, crossfit_detector, score_with_fold_models
from metrics.results import InsufficientSamplesError

from .conftest import add_generator_artefact


@pytest.fixture(scope="module")
def artefact_sets(isic_64):
    """60 real images, and 60 *other* real images carrying the conftest's upsampling + checkerboard window."""
    synthetic, _ = add_generator_artefact(isic_64[1:120:2], np.random.default_rng(1))
    return isic_64[0:120:2], synthetic


@pytest.fixture(scope="module")
def small_run(artefact_sets):
    real, synthetic = artefact_sets
    calls = []
    result = crossfit_detector(real[:30], synthetic[:30], folds=3, epochs=2, seed=7,
                               progress=lambda *done_total: calls.append(done_total))
    return result, calls


def _rows_by_fold(fold_of: tuple[int, ...], folds: int) -> list[set[int]]:
    fold_of_array = np.asarray(fold_of)
    return [set(np.flatnonzero(fold_of_array == k).tolist()) for k in range(folds)]


def test_no_image_is_scored_by_a_model_that_trained_on_it(small_run):
    result, _ = small_run
    detectability = result.detectability
    test_rows = _rows_by_fold(detectability.fold_of, detectability.folds)
    assert sorted(row for rows in test_rows for row in rows) == list(range(60))  # each row in exactly one test fold
    assert len(result.fold_models) == len(result.training_rows) == detectability.folds == 3
    for k, (trained_on, held_out) in enumerate(zip(result.training_rows, test_rows)):
        assert set(trained_on).isdisjoint(held_out)
        assert set(trained_on) | held_out == set(range(60))  # the inner validation comes out of the training rows
        split = result.fold_models[k].metadata["split"]
        assert set(split["test"]) == held_out and set(split["train"]) | set(split["validation"]) == set(trained_on)
        assert {0, 1} <= {int(row >= 30) for row in split["validation"]}  # stratified: both classes validate
        assert result.per_fold[k]["n_test"] == len(held_out)


def test_groups_never_sit_on_both_sides_of_a_fold(artefact_sets):
    real, synthetic = artefact_sets
    real_groups = [f"patient-{i // 3}" for i in range(30)]
    synthetic_groups = [f"seed-{i // 2}" if i % 5 else None for i in range(30)]  # None: a group of its own
    result = crossfit_detector(real[:30], synthetic[:30], real_groups=real_groups, synthetic_groups=synthetic_groups,
                               epochs=1, seed=3)
    groups = [f"r:{g}" for g in real_groups] + [f"s:{g}" if g else f"s#{i}" for i, g in enumerate(synthetic_groups)]
    assert result.detectability.grouped and "grouped" in result.detectability.method
    for trained_on, held_out in zip(result.training_rows, _rows_by_fold(result.detectability.fold_of, 3)):
        assert {groups[i] for i in trained_on}.isdisjoint({groups[i] for i in held_out})


def test_a_planted_generator_artefact_is_detected(artefact_sets):
    real, synthetic = artefact_sets
    detectability = crossfit_detector(real, synthetic, epochs=5, seed=0).detectability
    # Measured: 1.000 [1.000, 1.000], every fold 1.000, ~3 s; seeds 0 and 1, with and without the toy augmentation.
    assert detectability.auc > 0.9 and detectability.distinguishable
    assert detectability.ci.low > 0.8


def test_two_random_halves_of_one_real_set_are_not_distinguishable(isic_64):
    order = np.random.default_rng(0).permutation(len(isic_64))
    half = len(isic_64) // 2
    detectability = crossfit_detector(isic_64[order[:half]], isic_64[order[half:]], epochs=5, seed=0).detectability
    # Measured over 8 seeds at 120 vs 120: AUC 0.484-0.516, every CI (half-width ~0.075) containing 0.5.
    assert detectability.ci.low < 0.5 < detectability.ci.high
    assert not detectability.distinguishable


def test_the_same_seed_reproduces_the_scores_bit_for_bit(small_run, artefact_sets):
    result, _ = small_run
    real, synthetic = artefact_sets
    again = crossfit_detector(real[:30], synthetic[:30], folds=3, epochs=2, seed=7)
    assert again.detectability.fold_of == result.detectability.fold_of
    assert again.detectability.scores == result.detectability.scores
    assert again.detectability.auc == result.detectability.auc
    other = crossfit_detector(real[:30], synthetic[:30], folds=3, epochs=2, seed=8)
    assert other.detectability.scores != result.detectability.scores


def test_fold_models_score_other_images_and_the_result_is_plain_json(small_run, isic_64):
    result, calls = small_run
    other = isic_64[200:240]  # none of the fold models saw these
    probabilities = score_with_fold_models(result, other)
    assert probabilities.shape == (40,) and np.all((probabilities >= 0) & (probabilities <= 1))

    detectability = result.detectability
    assert len(detectability.scores) == 60 and all(0.0 <= s <= 1.0 for s in detectability.scores)
    assert (detectability.n_real, detectability.n_synthetic, detectability.seed) == (30, 30, 7)
    assert detectability.n_permutations == 0 and detectability.p_value is None and detectability.null_low is None
    assert all(fold["stopped_reason"] == "max_epochs" and fold["best_epoch"] in (1, 2) for fold in result.per_fold)
    assert calls[-1] == (6, 6) and len(calls) == 6  # folds x epochs

    document = result.to_dict()
    assert "fold_models" not in document
    decoded = json.loads(json.dumps(document, allow_nan=False))
    assert decoded["detectability"]["auc"] == detectability.auc
    assert decoded["training"]["model"]["depth"] == AUDIT_SCALE_MODEL.depth
    assert set(decoded["per_fold"][0]) >= {"n_train", "n_validation", "n_test", "best_epoch", "stopped_reason",
                                           "wall_s", "test_auc"}


def test_too_few_images_or_unstandardised_images_are_refused(isic_64):
    with pytest.raises(InsufficientSamplesError, match="at least 20"):
        crossfit_detector(isic_64[:19], isic_64[19:60])
    with pytest.raises(ValueError, match="standardised"):
        crossfit_detector(isic_64[:30, :32, :32], isic_64[30:60, :32, :32])
