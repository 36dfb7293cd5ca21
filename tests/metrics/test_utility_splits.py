"""The utility test's splits: real test folds only, whole lesions on one side, the held-out pool never smaller."""
from __future__ import annotations

import numpy as np
import pytest

from metrics.results import InsufficientSamplesError
from metrics.utility.splits import repeated_splits


@pytest.fixture
def design():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(150), rng.integers(1, 4, 150))  # 1-3 images per lesion
    labels = (rng.random(150) < 0.3).astype(int)[groups]  # one diagnosis per lesion, 30 % positive
    return labels, groups


def test_every_repeat_tests_each_image_once_and_never_splits_a_lesion(design):
    labels, groups = design
    splits = repeated_splits(labels, groups, folds=5, repeats=3, seed=7)
    assert len(splits) == 15
    for repeat in range(3):
        tested = np.concatenate([s.test for s in splits if s.repeat == repeat])
        assert sorted(tested.tolist()) == list(range(len(labels)))
    for split in splits:
        parts = [set(groups[split.test]), set(groups[split.train]), set(groups[split.held_out])]
        assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
        assert len(split.test) + len(split.train) + len(split.held_out) == len(labels)
        for c in (0, 1):  # the held-out pool can match the training set 1:1 in every class
            assert np.sum(labels[split.train] == c) <= np.sum(labels[split.held_out] == c)
            assert np.sum(labels[split.train] == c) > 0 and np.sum(labels[split.test] == c) > 0


def test_splits_follow_the_seed(design):
    labels, groups = design
    first = repeated_splits(labels, groups, folds=5, repeats=2, seed=3)
    again = repeated_splits(labels, groups, folds=5, repeats=2, seed=3)
    other = repeated_splits(labels, groups, folds=5, repeats=2, seed=4)
    assert all((a.test == b.test).all() and (a.train == b.train).all() for a, b in zip(first, again))
    assert any(len(a.test) != len(b.test) or (a.test != b.test).any() for a, b in zip(first, other))
    assert first[0].seed != first[5].seed  # each repeat its own recorded seed


def test_too_few_lesions_of_a_class_is_refused_with_the_reason():
    labels = np.array([0] * 40 + [1] * 6)
    with pytest.raises(InsufficientSamplesError, match="class 1 has 6 lesion/patient groups"):
        repeated_splits(labels, np.arange(46), folds=5, repeats=1)
