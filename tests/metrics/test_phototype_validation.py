"""Agreement of a phototype estimator with dermatologist labels, its baselines and the validation gate."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from metrics.phototype_validation import (
    agreement_by_acquisition,
    agreement_report,
    best_constant_type,
    choose_phototype,
    macro_mae,
)


def _synthetic(n_patients: int = 80, per_patient: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    patient_types = rng.choice([1, 2, 3, 4, 5], size=n_patients, p=[0.1, 0.4, 0.3, 0.15, 0.05])
    labels = np.repeat(patient_types, per_patient)
    groups = np.repeat([f"P{i}" for i in range(n_patients)], per_patient)
    return labels, groups, rng


def test_macro_mae_weighs_every_type_equally():
    # type 1: errors 1, 0 -> 0.5; type 2: 0; type 3: 2  -> (0.5 + 0 + 2) / 3
    assert macro_mae(np.array([1, 1, 2, 3]), np.array([2, 1, 2, 1])) == pytest.approx(2.5 / 3)


def test_best_constant_on_pad_ufes_20_is_type_iii_with_macro_mae_1_2(pad_dir):
    labels = pd.read_csv(pad_dir / "labels.csv")["fitzpatrick"].dropna().astype(int).to_numpy()
    assert best_constant_type(labels) == 3
    # Types I..V present: |1-3|, |2-3|, 0, |4-3|, |5-3| averaged -> 6 / 5
    assert macro_mae(labels, np.full(len(labels), 3)) == pytest.approx(1.2)


def test_perfect_estimator_is_validated():
    labels, groups, _ = _synthetic()
    report = agreement_report(labels, labels, groups, n_boot=300, n_permutations=100)
    assert report.exact == 1.0 and report.within_one == 1.0 and report.spearman_rho == pytest.approx(1.0)
    assert report.macro_mae == 0.0
    assert report.validated, report.gate
    assert report.best_constant.constant_type == 3 and report.best_constant.spearman_rho is None
    assert report.most_frequent.constant_type == 2


def test_informative_but_noisy_estimator_is_validated_and_random_one_is_not():
    labels, groups, rng = _synthetic(n_patients=150)
    noisy = np.clip(labels + rng.choice([-1, 0, 0, 1], size=len(labels)), 1, 6)
    report = agreement_report(labels, noisy, groups, n_boot=500, n_permutations=200)
    assert report.validated, report.gate
    assert report.macro_mae_gain_ci[0] > 0 and report.spearman_ci[0] > 0

    random = rng.integers(1, 7, size=len(labels))
    report = agreement_report(labels, random, groups, n_boot=500, n_permutations=200, seed=1)
    assert not report.validated
    assert "does not exclude 0" in report.gate


def test_constant_predictor_is_never_validated_and_its_report_is_strict_json():
    labels, groups, _ = _synthetic()
    report = agreement_report(labels, np.full(len(labels), 3), groups, n_boot=300, n_permutations=100)
    assert not report.validated
    assert report.macro_mae == pytest.approx(report.best_constant.macro_mae)
    assert np.isnan(report.spearman_rho)  # undefined for a constant: stored as null, not NaN (jsonb rejects NaN)
    stored = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert stored["spearman_rho"] is None and stored["mae_per_type"]["3"] == 0.0


def test_point_statistics_match_references():
    labels, groups, rng = _synthetic()
    estimates = np.clip(labels + rng.integers(-2, 3, size=len(labels)), 1, 6)
    report = agreement_report(labels, estimates, groups, n_boot=200, n_permutations=100)
    assert report.spearman_rho == pytest.approx(stats.spearmanr(labels, estimates).statistic)
    assert report.exact == pytest.approx(np.mean(labels == estimates))
    confusion = np.array(report.confusion)
    assert confusion.shape == (6, 6) and confusion.sum() == len(labels)
    assert confusion[2, 3] == np.sum((labels == 3) & (estimates == 4))
    assert report.n_patients == 80


def test_undetermined_estimates_lower_coverage_and_unlabelled_images_are_skipped():
    labels = [1, 2, 2, 3, 3, None, 4, 2] * 10
    estimates = [1, 2, None, 3, 3, 5, None, 2] * 10
    report = agreement_report(labels, estimates, n_boot=100, n_permutations=50)
    assert report.n_labelled == 70 and report.n_compared == 50
    assert report.coverage == pytest.approx(50 / 70)


def test_low_coverage_fails_the_gate_even_when_agreement_is_perfect():
    labels, groups, _ = _synthetic()
    estimates = [v if i % 3 == 0 else None for i, v in enumerate(labels)]
    report = agreement_report(labels, estimates, groups, n_boot=200, n_permutations=50)
    assert report.exact == 1.0 and not report.validated and "estimates for only" in report.gate


def test_patient_bootstrap_widens_intervals_when_patients_repeat():
    # Each patient photographed 6 times with identical results: the images are not independent evidence.
    labels, groups, rng = _synthetic(n_patients=60, per_patient=6)
    per_patient_noise = np.repeat(rng.integers(-1, 2, size=60), 6)
    estimates = np.clip(labels + per_patient_noise, 1, 6)
    by_patient = agreement_report(labels, estimates, groups, n_boot=1000, n_permutations=10)
    by_image = agreement_report(labels, estimates, None, n_boot=1000, n_permutations=10)
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    assert width(by_patient.spearman_ci) > 1.6 * width(by_image.spearman_ci)


def test_reports_per_acquisition_type_are_gated_separately():
    labels, groups, rng = _synthetic(n_patients=120)
    acquisitions = np.where(np.arange(len(labels)) % 2 == 0, "dermoscopic", "clinical").tolist()
    estimates = np.where(np.array(acquisitions) == "clinical", labels, rng.integers(1, 7, size=len(labels)))
    reports = agreement_by_acquisition(labels, estimates, groups, acquisitions, n_boot=300, n_permutations=50)
    assert reports["clinical"].validated and not reports["dermoscopic"].validated
    assert reports["clinical"].acquisition == "clinical"
    assert reports["clinical"].to_dict()["validated"] is True


def test_choose_phototype_prefers_labels_and_marks_unvalidated_estimates():
    assert choose_phototype("II", 5, method="ita/v1", estimator_validated=False).source == "dermatologist"
    unvalidated = choose_phototype(None, 5, method="ita/v1", estimator_validated=False)
    assert unvalidated.fitzpatrick == 5 and unvalidated.source == "estimate"
    assert not unvalidated.validated and not unvalidated.may_drive_pass_fail
    assert choose_phototype(None, 5, method="ita/v1", estimator_validated=True).may_drive_pass_fail
    assert choose_phototype(float("nan"), None, method="ita/v1", estimator_validated=True).source == "undetermined"
