"""What the phototype estimators achieve on dermatologist-labelled PAD-UFES-20 photos (Pacheco et al. 2020, CC BY 4.0).

Known before this code was written: colour-only estimators agree with these labels at chance level. These tests
assert that the agreement report says so and that the gate refuses to validate them, without pinning numbers that
a better mask could legitimately move.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metrics.phototype import estimate_phototypes
from metrics.phototype_learned import colour_statistics, cross_validated_predictions
from metrics.phototype_validation import agreement_report

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def labelled_pad(pad_dir):
    table = pd.read_csv(pad_dir / "labels.csv")
    table = table[table["fitzpatrick"].notna()].reset_index(drop=True)
    estimates = estimate_phototypes([pad_dir / name for name in table["file"]])
    return table, estimates


def test_ita_agrees_with_dermatologists_only_at_chance_level_and_is_not_validated(labelled_pad):
    table, estimates = labelled_pad
    report = agreement_report(
        table["fitzpatrick"].astype(int).tolist(), estimates, table["patient_id"].tolist(),
        estimator="ita", acquisition="clinical", n_boot=1000, n_permutations=300,
    )
    assert report.n_labelled == 267
    assert report.coverage > 0.5  # most photos are measurable; they are just not measured right
    assert report.best_constant.constant_type == 3
    assert report.most_frequent.constant_type == 2
    assert report.best_constant.macro_mae == pytest.approx(1.2)  # per-type MAE of a constant ignores counts
    assert report.spearman_ci[0] < 0 < report.spearman_ci[1]  # no detectable rank agreement
    assert report.macro_mae > report.best_constant.macro_mae
    assert not report.validated
    assert "does not exclude 0" in report.gate


def test_learned_colour_model_does_not_beat_the_constant_predictor_either(labelled_pad):
    table, estimates = labelled_pad
    labels = table["fitzpatrick"].astype(int).to_numpy()
    groups = table["patient_id"].to_numpy()
    predictions = cross_validated_predictions(
        None, labels, groups, colour_stats=colour_statistics(estimates), model="ordinal", seed=0
    )
    report = agreement_report(labels, predictions, groups, estimator="learned-ordinal", n_boot=1000)
    assert report.coverage == 1.0
    assert not report.validated
    assert not np.isnan(report.macro_mae)
