"""Inception Score and Mode Score from the extractor's ImageNet head: equal to torchmetrics' InceptionScore on the
same logits, right on analytic cases, and labelled with the network and the dermatology caveat."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torchmetrics.image.inception import InceptionScore

from metrics.inception_score import (
    compute_inception_score,
    compute_mode_score,
    inception_score_from_logits,
    mode_score_from_logits,
)


class _Identity(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_equals_torchmetrics_inception_score_on_the_same_logits(effnet, isic_reference) -> None:
    logits = effnet.logits_from_features(isic_reference.features)
    metric = InceptionScore(feature=_Identity(), splits=1)
    metric.update(torch.from_numpy(logits))
    expected, _ = metric.compute()
    ours = compute_inception_score(isic_reference, seed=0, splits=1)
    assert ours.value == pytest.approx(float(expected), rel=1e-9)
    assert ours.label == "Inception Score (EfficientNet-Lite0 (ImageNet) classifier head)"
    assert "not dermatology classes" in ours.caveat


def test_analytic_values() -> None:
    confident = np.full((60, 6), -30.0)
    confident[np.arange(60), np.arange(60) % 6] = 30.0  # each image sure of one class, classes balanced
    assert inception_score_from_logits(confident) == pytest.approx(6.0, rel=1e-6)
    assert inception_score_from_logits(np.zeros((10, 6))) == pytest.approx(1.0)
    assert mode_score_from_logits(confident, confident) == pytest.approx(6.0, rel=1e-6)
    # Generated images that cover only half the reference's classes lose the marginal-mismatch penalty.
    half = confident[np.arange(60) % 6 < 3]
    assert mode_score_from_logits(half, confident) == pytest.approx(np.exp(np.log(6) - np.log(2)), rel=1e-6)


def test_splits_and_interval(isic_reference, pad_features) -> None:
    result = compute_inception_score(pad_features, seed=0, splits=4)
    assert result.splits == 4 and result.split_std > 0
    assert result.ci.low < result.full_sample_value < result.ci.high
    mode = compute_mode_score(isic_reference, pad_features, seed=0)
    assert mode.value > 0 and mode.label.startswith("Mode Score")
