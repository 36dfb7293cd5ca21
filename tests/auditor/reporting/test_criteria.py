"""Every criterion's verdict stands on its controls: a control that is missing or misbehaves makes it N/A."""
from __future__ import annotations

import copy

import pytest

from auditor.models import Audit
from auditor.models.audits import DEFAULT_CRITERIA
from auditor.reporting.criteria import CRITERIA, evaluate_criteria


def suite(fd: float, fd_high: float, floor: float, kid: float, precision: float, recall: float) -> dict:
    return {"frechet": {"value": fd, "ci": {"low": fd * 0.9, "high": fd_high}}, "real_floor": {"floor": floor},
            "kernel_distance": {"value": kid, "ci": {"low": kid / 2, "high": kid * 2}},
            "precision_recall": {"precision": precision, "recall": recall, "precision_ci": {"low": 0, "high": 1},
                                 "recall_ci": {"low": 0, "high": 1}}}


def rate(copies: int, n: int, high: float) -> dict:
    return {"n": n, "copies": copies, "copy_rate": copies / n, "copy_ci": {"low": 0.0, "high": high}}


def auc(value: float, low: float, high: float) -> dict:
    return {"auc": value, "ci": {"low": low, "high": high}, "distinguishable": low > 0.5, "n_real": 100, "n_synthetic": 100}


def balance(tvd: float) -> dict:
    return {"total_variation": tvd, "total_variation_ci": [tvd - 0.02, tvd + 0.02]}


def good_results() -> dict:
    """A well-behaved audit: every control met, the generated set good on every criterion."""
    return {
        "fidelity": {"generated": suite(11.0, 13.0, 10.0, 0.002, 0.7, 0.6),
                     "negative_control": suite(10.0, 13.0, 10.0, 0.001, 0.75, 0.7),
                     "baseline": suite(90.0, 100.0, 10.0, 0.2, 0.1, 0.05)},
        "memorization": {"copies": {"generated": rate(0, 1000, 0.004), "held_out_real": rate(2, 278, 0.026),
                                    "exact_copies": rate(200, 200, 1.0), "transformed_copies": rate(198, 200, 0.997)}},
        "phototype": {"balance": balance(0.1), "may_drive_pass_fail": True,
                      "controls": {"target_sample": balance(0.05), "single_type": balance(0.83)}},
        "detectability": {kind: {"audited": auc(0.55, 0.5, 0.6), "negative_control": auc(0.5, 0.44, 0.56),
                                 "positive_control": auc(0.99, 0.98, 1.0)} for kind in ("vit", "probe")},
    }


def rows_of(results: dict, **criteria) -> dict[str, dict]:
    return {row["name"]: row for row in evaluate_criteria(Audit(criteria=criteria), results)}


def test_every_default_criterion_has_a_plain_title_and_both_controls():
    assert set(CRITERIA) == set(DEFAULT_CRITERIA)
    for name, criterion in CRITERIA.items():
        kinds = {control.kind for control in criterion.controls}
        assert kinds == {"negative", "positive"} or (name == "reader_auc" and criterion.controls_note), name
        assert criterion.title and criterion.explanation and criterion.unit


def test_controls_met_give_verdicts():
    rows = rows_of(good_results())
    for name in ("fd_upper_ci_over_floor", "kid", "precision", "recall", "memorization_rate", "phototype_tvd",
                 "detectability"):
        assert rows[name]["status"] == "PASS", (name, rows[name]["reason"])
        assert [c["ok"] for c in rows[name]["controls"]] == [True] * len(rows[name]["controls"])
    assert rows["fd_upper_ci_over_floor"]["value"] == pytest.approx(1.3)
    bad = good_results()
    bad["fidelity"]["generated"] = suite(80.0, 95.0, 10.0, 0.1, 0.2, 0.1)
    bad["memorization"]["copies"]["generated"] = rate(80, 1000, 0.098)
    bad["detectability"]["vit"]["audited"] = auc(0.97, 0.95, 0.99)
    rows = rows_of(bad)
    for name in ("fd_upper_ci_over_floor", "kid", "precision", "recall", "memorization_rate", "detectability"):
        assert rows[name]["status"] == "FAIL", name


def test_a_failing_positive_control_makes_the_criterion_na():
    results = good_results()
    results["detectability"]["vit"]["positive_control"] = auc(0.7, 0.62, 0.78)  # misses the upsampling trace
    results["memorization"]["copies"]["transformed_copies"] = rate(150, 200, 0.8)  # misses transformed copies
    results["fidelity"]["baseline"] = suite(11.0, 14.0, 10.0, 0.001, 0.7, 0.6)  # the "bad" set passes
    rows = rows_of(results)
    for name, label in (("detectability", "upsampling trace"), ("memorization_rate", "transformed copies"),
                        ("fd_upper_ci_over_floor", "baseline generator")):
        assert rows[name]["status"] == "N/A", name
        assert "positive control did not behave" in rows[name]["reason"] and label in rows[name]["reason"]
    vit = rows["detectability"]["controls"][1]
    assert (vit["ok"], vit["requirement"], vit["value_text"]) == (False, "≥ 0.900", "0.700")


def test_a_failing_negative_control_makes_the_criterion_na():
    results = good_results()
    results["detectability"]["probe"]["negative_control"] = auc(0.8, 0.74, 0.86)  # "detects" real vs real
    results["memorization"]["copies"]["held_out_real"] = rate(30, 278, 0.15)  # calls different lesions copies
    rows = rows_of(results)
    assert rows["detectability"]["status"] == rows["memorization_rate"]["status"] == "N/A"
    assert "negative control did not behave" in rows["detectability"]["reason"]
    assert "feature probe" in rows["detectability"]["reason"]
    assert rows["detectability"]["controls"][2]["requirement"] == "must pass (≤ 0.750)"


def test_a_missing_control_is_never_a_pass():
    results = good_results()
    del results["fidelity"]["baseline"]  # no baseline set
    results["detectability"]["vit"] = {"audited": auc(0.5, 0.45, 0.55)}
    rows = rows_of(results)
    assert rows["fd_upper_ci_over_floor"]["status"] == "N/A"
    assert "positive control not measured" in rows["fd_upper_ci_over_floor"]["reason"]
    assert "no baseline set" in rows["fd_upper_ci_over_floor"]["reason"]
    assert rows["detectability"]["status"] == "N/A"
    # A stage that did not run at all says so.
    assert rows_of({})["kid"]["reason"] == "the fidelity stage did not run"


def test_a_threshold_change_is_judged_by_the_same_controls():
    rows = rows_of(good_results(), precision={"threshold": 0.99})
    assert rows["precision"]["status"] == "N/A"  # real-vs-real precision 0.75 fails a threshold of 0.99
    assert rows_of(good_results(), kid={"enabled": False})["kid"]["reason"] == "not selected for this audit"


def test_unvalidated_phototypes_show_the_value_but_give_no_verdict():
    results = copy.deepcopy(good_results())
    results["phototype"]["may_drive_pass_fail"] = False
    row = rows_of(results)["phototype_tvd"]
    assert row["status"] == "N/A" and row["value"] == 0.1 and "not validated" in row["reason"]


def test_one_detectability_verdict_cannot_pass_beside_a_test_that_separates_the_set():
    """The issue's case: the ViT near chance with both controls met, the probe at 0.993. Two criteria used to give
    PASS beside FAIL; the one verdict is FAIL, decided by the probe, and both tests stay in the row."""
    results = good_results()
    results["detectability"]["vit"]["audited"] = auc(0.582, 0.534, 0.630)
    results["detectability"]["probe"]["audited"] = auc(0.993, 0.983, 1.0)
    row = rows_of(results)["detectability"]
    assert row["status"] == "FAIL" and row["value"] == pytest.approx(1.0) and row["estimate"] == pytest.approx(0.993)
    tests = {t["test"]: t for t in row["tests"]}
    assert tests["probe"]["distinguishable"] and tests["vit"]["distinguishable"]  # 0.534 > 0.5, Holm-adjusted
    assert tests["vit"]["holm_p_value"] >= tests["vit"]["p_value"]


def test_a_test_too_weak_for_its_hard_control_blocks_a_pass_but_not_a_fail():
    results = good_results()
    results["detectability"]["vit"]["positive_control"] = auc(0.62, 0.55, 0.69)  # misses the upsampling trace
    weak = rows_of(results)["detectability"]
    assert weak["status"] == "N/A" and "too weak to vouch" in weak["reason"]
    results["detectability"]["probe"]["audited"] = auc(0.95, 0.92, 0.98)
    failing = rows_of(results)["detectability"]
    assert failing["status"] == "FAIL"
    assert failing["controls"][1]["waived"] and not failing["controls"][1]["ok"]


def test_a_test_left_out_of_the_criterion_neither_decides_nor_needs_controls():
    results = good_results()
    results["detectability"]["vit"] = {"audited": {"error": "the ViT test is not selected for this audit"}}
    results["detectability"]["probe"]["audited"] = auc(0.6, 0.52, 0.68)
    row = rows_of(results, detectability={"tests": ["probe"]})["detectability"]
    assert row["status"] == "PASS" and [c["label"].split(":")[0] for c in row["controls"]] == ["feature probe"] * 2
    assert rows_of(results)["detectability"]["status"] == "N/A"
