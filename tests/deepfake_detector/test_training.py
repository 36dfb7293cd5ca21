"""Training separates the toy classes, is deterministic given a seed, and can be stopped from outside."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from deepfake_detector import TrainingCancelled, score_images, split_by_group, train_detector

from .conftest import TOY_TRAINING

# Two short epochs on a subset: enough to move every weight, cheap enough to run three times.
SHORT = dataclasses.replace(TOY_TRAINING, max_epochs=2, patience=10)


@pytest.fixture(scope="module")
def small(toy_dataset):
    subset = toy_dataset.subset(np.r_[0:40, 120:160])
    return subset, split_by_group(subset.labels, subset.groups, fractions=(0.6, 0.2, 0.2), seed=0)


@pytest.mark.slow
def test_training_reduces_loss_and_separates_held_out_classes(toy_training, toy_dataset, toy_split):
    history = toy_training.history
    assert history[-1].train_loss < 0.6 * history[0].train_loss
    assert toy_training.validation["auc"] > 0.95
    test = toy_dataset.subset(toy_split.test)
    assert roc_auc_score(test.labels, score_images(toy_training.detector, test.images)) > 0.95


def test_training_is_deterministic_given_the_seed(small):
    dataset, split = small
    first = train_detector(dataset, split, SHORT).detector
    second = train_detector(dataset, split, SHORT).detector
    other_seed = train_detector(dataset, split, dataclasses.replace(SHORT, seed=1)).detector
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(tensor, second.model.state_dict()[name]), name
    assert first.temperature == second.temperature
    assert not torch.equal(first.model.pos_embed, other_seed.model.pos_embed)
    np.testing.assert_array_equal(score_images(first, dataset.images), score_images(second, dataset.images))


def test_progress_is_reported_and_cancellation_stops_training(small):
    dataset, split = small
    reports = []
    result = train_detector(dataset, split, SHORT, progress=reports.append)
    assert [r.epoch for r in reports] == [1, 2] and reports[-1].fraction_done == 1.0
    assert result.detector.metadata["stopped_reason"] == "max_epochs"
    calls = []
    with pytest.raises(TrainingCancelled):
        train_detector(dataset, split, SHORT, should_stop=lambda: calls.append(1) or len(calls) > 2)
    assert len(calls) == 3


def test_time_budget_stops_training(small):
    dataset, split = small
    result = train_detector(dataset, split, dataclasses.replace(SHORT, time_budget_s=0.0))
    assert result.stopped_reason == "time_budget" and result.history == []


def test_overlapping_splits_are_refused(small):
    dataset, split = small
    leaky = dataclasses.replace(split, test=np.r_[split.test, split.train[:1]])
    with pytest.raises(ValueError, match="overlap"):
        train_detector(dataset, leaky, SHORT)
