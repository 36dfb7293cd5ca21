"""The fine-tuned network of the utility test learns from images, reproduces itself, and plugs into the protocol."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from metrics.utility.finetune import FLIPS, FineTunedEffNet
from tests.metrics.conftest import labelled_paths


@pytest.fixture(scope="module")
def network():
    return FineTunedEffNet(epochs=4, image_size=64, batch_size=16)


@pytest.fixture(scope="module")
def dermoscopic_vs_clinical(network, isic_dir, pad_dir):
    """Two visibly different kinds of real image as the two classes: 40 of each, 25 to train and 15 to test."""
    paths = labelled_paths(isic_dir)[:40] + labelled_paths(pad_dir)[:40]
    with torch.random.fork_rng(devices=[]):
        torch.set_num_threads(1)
        activations = network.activations(paths)
    labels = np.repeat([0, 1], 40)
    train = np.r_[np.arange(25), np.arange(40, 65)]
    test = np.r_[np.arange(25, 40), np.arange(65, 80)]
    return activations, labels, train, test


def test_trunk_activations_hold_each_image_and_its_three_flips(dermoscopic_vs_clinical):
    activations = dermoscopic_vs_clinical[0]
    assert activations.shape == (80, len(FLIPS), 192, 2, 2) and activations.dtype == np.float32
    # The left-right flip of an image is a different input: its activations differ, but not the channel means much.
    assert not np.allclose(activations[0, 0], activations[0, 1])


def test_fine_tuned_tail_learns_the_classes_and_reproduces_its_predictions(network, dermoscopic_vs_clinical):
    activations, labels, train, test = dermoscopic_vs_clinical
    predict = network.fit(activations[train], labels[train], 2, seed=3)
    probabilities = predict(activations[test])
    assert probabilities.shape == (30, 2) and np.allclose(probabilities.sum(axis=1), 1.0)
    assert roc_auc_score(labels[test], probabilities[:, 1]) > 0.9
    again = network.fit(activations[train], labels[train], 2, seed=3)(activations[test])
    assert np.array_equal(probabilities, again)
    other = network.fit(activations[train], labels[train], 2, seed=4)(activations[test])
    assert not np.array_equal(probabilities, other)
