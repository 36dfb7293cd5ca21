"""Verdicts a pipeline can read: `/api/audits/` carries each audit's `verdict` (PASS / FAIL / INCOMPLETE) and its
`criteria` as typed objects with numbers as numbers, and filters the list by status, verdict, sets and creation time.

Audits are built from stored stage results (no audit runs here): small hand-made blocks where the verdict is the
point, and the stage results a real audit stored (tests/web/audit_results.json) where the numbers are."""
from __future__ import annotations

import copy
import json
import operator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from auditor.models import Audit, AuditResult, ImageSet, Role
from auditor.models.audits import DEFAULT_CRITERIA
from tests.auditor.conftest import api_client_for, make_user

pytestmark = pytest.mark.django_db

STORED_RESULTS = Path(__file__).resolve().parents[2] / "web" / "audit_results.json"
NUMBER_KEYS = ("value", "ci_low", "ci_high", "compared_value")
OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}


def suite(fd: float, fd_high: float, kid: float, precision: float, recall: float) -> dict:
    return {"frechet": {"value": fd, "ci": {"low": fd * 0.9, "high": fd_high}}, "real_floor": {"floor": 10.0},
            "kernel_distance": {"value": kid, "ci": {"low": kid / 2, "high": kid * 2}},
            "precision_recall": {"precision": precision, "recall": recall, "precision_ci": {"low": 0, "high": 1},
                                 "recall_ci": {"low": 0, "high": 1}}}


def rate(copies: int, n: int, high: float) -> dict:
    return {"n": n, "copies": copies, "copy_rate": copies / n, "copy_ci": {"low": 0.0, "high": high}}


def auc(value: float, low: float, high: float) -> dict:
    return {"auc": value, "ci": {"low": low, "high": high}}


def gain(value: float, low: float, high: float) -> dict:
    return {"gain": value, "ci": {"low": low, "high": high}, "ratio": 1.0}


def balance(tvd: float) -> dict:
    return {"total_variation": tvd, "total_variation_ci": [tvd - 0.02, tvd + 0.02]}


def passing_results() -> dict:
    """Every default criterion PASSes with every control met (the reader study's criterion is off by default)."""
    return {
        "fidelity": {"generated": suite(11.0, 13.0, 0.002, 0.7, 0.6), "negative_control": suite(10.0, 13.0, 0.001, 0.75, 0.7),
                     "baseline": suite(90.0, 100.0, 0.2, 0.1, 0.05)},
        "memorization": {"copies": {"generated": rate(0, 1000, 0.004), "held_out_real": rate(2, 278, 0.026),
                                    "exact_copies": rate(200, 200, 1.0), "transformed_copies": rate(198, 200, 0.997)}},
        "phototype": {"balance": balance(0.1), "may_drive_pass_fail": True,
                      "controls": {"target_sample": balance(0.05), "single_type": balance(0.83)}},
        "detectability": {kind: {"audited": auc(0.55, 0.5, 0.6), "negative_control": auc(0.5, 0.44, 0.56),
                                 "positive_control": auc(0.99, 0.98, 1.0)} for kind in ("vit", "probe")},
        "utility": {"audited": gain(0.01, -0.01, 0.03), "negative_control": gain(0.02, 0.0, 0.04),
                    "positive_control": gain(-0.1, -0.15, -0.05)},
    }


@pytest.fixture
def sets(org) -> dict[str, ImageSet]:
    return {kind: ImageSet.objects.create(organisation=org, name=f"{kind} set", kind=kind)
            for kind in ("generated", "reference")}


def audit_with(org, sets, results: dict | None, *, status: str = Audit.Status.SUCCEEDED, **fields) -> Audit:
    audit = Audit.objects.create(organisation=org, name=fields.pop("name", "audit"), generated_set=sets["generated"],
                                 reference_set=sets["reference"], status=status, **fields)
    AuditResult.objects.bulk_create([AuditResult(audit=audit, stage=stage, data=data)
                                     for stage, data in (results or {}).items()])
    return audit


def detail(client, audit: Audit) -> dict:
    response = client.get(f"/api/audits/{audit.pk}/")
    assert response.status_code == 200, response.content
    return response.json()


def listed(client, query: str = "") -> list[int]:
    response = client.get(f"/api/audits/{query}")
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


# --- the verdict ------------------------------------------------------------------------------------------------------

def test_every_selected_criterion_passing_is_pass(quality_client, org, sets):
    body = detail(quality_client, audit_with(org, sets, passing_results()))
    statuses = {c["name"]: c["status"] for c in body["criteria"]}
    assert statuses == {name: "N/A" if name == "reader_auc" else "PASS" for name in DEFAULT_CRITERIA}
    assert body["verdict"] == "PASS"  # reader_auc is N/A but not selected: it does not count


def test_one_failure_is_fail_whatever_else_is_na(quality_client, org, sets):
    results = passing_results()
    results["detectability"]["probe"]["audited"] = auc(0.97, 0.95, 0.99)  # easy to detect
    del results["fidelity"]["baseline"]  # FD, KID, precision, recall lose their positive control: N/A
    body = detail(quality_client, audit_with(org, sets, results))
    statuses = {c["name"]: c["status"] for c in body["criteria"]}
    assert statuses["detectability"] == "FAIL" and statuses["kid"] == "N/A"
    assert body["verdict"] == "FAIL"


def test_a_selected_criterion_that_is_na_makes_it_incomplete_never_pass(quality_client, org, sets):
    results = passing_results()
    results["detectability"]["vit"]["positive_control"] = auc(0.7, 0.6, 0.8)  # cannot detect the known-bad set
    body = detail(quality_client, audit_with(org, sets, results))
    vit = next(c for c in body["criteria"] if c["name"] == "detectability")
    assert vit["status"] == "N/A" and "positive control did not behave" in vit["reason"]
    assert body["verdict"] == "INCOMPLETE"
    # The same N/A criterion, not selected, no longer counts.
    off = audit_with(org, sets, results, criteria={"detectability": {"enabled": False}})
    assert detail(quality_client, off)["verdict"] == "PASS"
    # A selected reader study without a closed study behind it is N/A too.
    reader = audit_with(org, sets, passing_results(), criteria={"reader_auc": {"enabled": True}})
    assert detail(quality_client, reader)["verdict"] == "INCOMPLETE"


def test_no_selected_criterion_is_incomplete(quality_client, org, sets):
    nothing = {name: {"enabled": False} for name in DEFAULT_CRITERIA}
    assert detail(quality_client, audit_with(org, sets, passing_results(), criteria=nothing))["verdict"] == "INCOMPLETE"


@pytest.mark.parametrize("status", [Audit.Status.DRAFT, Audit.Status.QUEUED, Audit.Status.RUNNING, Audit.Status.FAILED])
def test_an_audit_that_has_not_succeeded_is_incomplete_even_with_results_in(quality_client, org, sets, status):
    failing = passing_results()
    failing["detectability"]["probe"]["audited"] = auc(0.97, 0.95, 0.99)
    for results in (passing_results(), failing):
        body = detail(quality_client, audit_with(org, sets, results, status=status))
        assert body["verdict"] == "INCOMPLETE", results
        assert {c["status"] for c in body["criteria"]} <= {"PASS", "FAIL", "N/A"}


def test_a_new_draft_answers_with_its_criteria_and_settings(quality_client, org, sets):
    response = quality_client.post("/api/audits/", {
        "name": "draft", "generated_set": sets["generated"].pk, "reference_set": sets["reference"].pk,
        "criteria": {"kid": {"threshold": 0.1}, "reader_auc": {"enabled": True}}}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["verdict"] == "INCOMPLETE" and body["status"] == "draft"
    assert body["criteria_settings"] == {"kid": {"threshold": 0.1}, "reader_auc": {"enabled": True}}
    by_name = {c["name"]: c for c in body["criteria"]}
    assert list(by_name) == list(DEFAULT_CRITERIA)
    assert (by_name["kid"]["threshold"], by_name["kid"]["direction"], by_name["kid"]["status"]) == (0.1, "max", "N/A")
    assert by_name["kid"]["reason"] == "the fidelity stage did not run" and by_name["reader_auc"]["enabled"] is True
    # The settings read back under criteria_settings are what criteria takes.
    again = quality_client.patch(f"/api/audits/{body['id']}/", {"criteria": body["criteria_settings"]}, format="json")
    assert again.status_code == 200 and again.json()["criteria_settings"] == body["criteria_settings"]


@pytest.mark.parametrize(("given", "problem"), [
    ([{"name": "kid"}], "criteria must be an object"),  # the evaluated list is not a setting
    ({"kid": {"threshold": True}}, "threshold must be a number"),
    ({"kid": {"enabled": "no"}}, "enabled must be true or false"),
])
def test_criteria_settings_are_checked(quality_client, org, sets, given, problem):
    response = quality_client.post("/api/audits/", {
        "name": "draft", "generated_set": sets["generated"].pk, "reference_set": sets["reference"].pk,
        "criteria": given}, format="json")
    assert response.status_code == 400 and problem in str(response.json()["criteria"])


# --- the criteria objects -----------------------------------------------------------------------------------------

def stored_results(utility: bool = True) -> dict:
    """A real audit's stored stage results, plus the decision of a utility stage (the template predates it)."""
    results = json.loads(STORED_RESULTS.read_text())
    if utility:
        results["utility"] = {"audited": gain(0.012, -0.031, 0.055), "negative_control": gain(0.02, -0.01, 0.05),
                              "positive_control": gain(-0.2, -0.26, -0.14)}
    return results


def test_the_criteria_numbers_are_the_stored_results(quality_client, org, sets):
    results = stored_results()
    body = detail(quality_client, audit_with(org, sets, copy.deepcopy(results), criteria={"kid": {"threshold": 10.0}}))
    by_name = {c["name"]: c for c in body["criteria"]}
    generated = results["fidelity"]["generated"]
    floor, fd = generated["real_floor"]["floor"], generated["frechet"]
    fd_row = by_name["fd_upper_ci_over_floor"]
    assert fd_row["value"] == pytest.approx(fd["value"] / floor)
    assert (fd_row["ci_low"], fd_row["ci_high"]) == pytest.approx((fd["ci"]["low"] / floor, fd["ci"]["high"] / floor))
    assert fd_row["compared_value"] == pytest.approx(fd["ci"]["high"] / floor) == fd_row["ci_high"]
    assert fd_row["compared_is"] == "upper 95% CI bound"
    assert (fd_row["threshold"], fd_row["direction"]) == (1.5, "max")

    kid = generated["kernel_distance"]
    assert (by_name["kid"]["value"], by_name["kid"]["ci_low"], by_name["kid"]["ci_high"]) == (
        kid["value"], kid["ci"]["low"], kid["ci"]["high"])
    assert by_name["kid"]["compared_value"] == kid["value"] and by_name["kid"]["compared_is"] == "point estimate"
    assert by_name["kid"]["threshold"] == 10.0  # this audit's setting

    probe = results["detectability"]["probe"]["audited"]
    detectability = by_name["detectability"]
    assert (detectability["value"], detectability["compared_value"]) == (probe["auc"], probe["ci"]["high"])
    assert detectability["status"] == "FAIL"  # the probe's upper bound 1.0 > 0.75 decides, its controls met

    copies = results["memorization"]["copies"]["generated"]
    memorisation = by_name["memorization_rate"]
    assert (memorisation["value"], memorisation["ci_low"], memorisation["ci_high"]) == (
        copies["copy_rate"], copies["copy_ci"]["low"], copies["copy_ci"]["high"])
    assert memorisation["compared_value"] == copies["copy_ci"]["high"]

    utility = by_name["utility_gain"]
    assert (utility["value"], utility["ci_low"], utility["ci_high"]) == (0.012, -0.031, 0.055)
    assert (utility["compared_value"], utility["compared_is"], utility["direction"]) == (-0.031, "lower 95% CI bound", "min")
    assert utility["status"] == "FAIL"  # -0.031 < -0.02 while the set's controls behave

    tvd = by_name["phototype_tvd"]
    assert tvd["value"] == results["phototype"]["balance"]["total_variation"] and tvd["status"] == "N/A"
    assert "not validated" in tvd["reason"]  # the number is shown; an unvalidated estimator does not decide
    assert body["verdict"] == "FAIL"

    # Controls: numbers as numbers, `required` usable as it stands.
    vit_positive = by_name["detectability"]["controls"][1]
    assert vit_positive["required"] == {"direction": "min", "bound": 0.9, "must": "pass", "op": ">=",
                                        "source": "control requirement"}
    assert vit_positive["value"] == results["detectability"]["vit"]["positive_control"]["auc"]
    assert vit_positive["met"] is False and vit_positive["waived"]  # AUC 0.66: too weak, but the probe fails the set
    fd_negative, fd_positive = by_name["fd_upper_ci_over_floor"]["controls"]
    assert fd_negative["required"] == {"direction": "max", "bound": 1.5, "must": "pass", "op": "<=",
                                       "source": "criterion threshold"}
    assert fd_positive["required"]["must"] == "fail" and fd_positive["required"]["op"] == ">"
    assert fd_positive["set"].startswith("the baseline generator's images")


def test_every_number_is_a_number_and_every_control_obeys_its_requirement(quality_client, org, sets):
    body = detail(quality_client, audit_with(org, sets, stored_results()))
    assert {c["name"] for c in body["criteria"]} == set(DEFAULT_CRITERIA)
    for criterion in body["criteria"]:
        for key in NUMBER_KEYS:
            assert criterion[key] is None or isinstance(criterion[key], (int, float)), (criterion["name"], key)
        if criterion["compared_value"] is not None:
            bound = {"upper 95% CI bound": criterion["ci_high"], "lower 95% CI bound": criterion["ci_low"],
                     "point estimate": criterion["value"]}[criterion["compared_is"]]
            assert criterion["compared_value"] == bound, criterion["name"]
            if criterion["status"] in ("PASS", "FAIL"):
                rule = OPS["<=" if criterion["direction"] == "max" else ">="]
                assert rule(criterion["compared_value"], criterion["threshold"]) == (criterion["status"] == "PASS")
        for control in criterion["controls"]:
            assert set(control) == {"kind", "set", "value", "ci_low", "ci_high", "compared_value", "compared_is",
                                    "required", "met", "waived", "reason"}
            if control["compared_value"] is None:
                assert control["met"] is None and control["reason"]
            else:
                required = control["required"]
                assert control["met"] == OPS[required["op"]](control["compared_value"], required["bound"]), control


def test_the_json_twin_carries_the_same_criteria_objects(quality_client, org, sets, quality_user):
    from auditor.reporting.builder import build_document

    # Without a utility stage: the report's section 10 needs the stage's whole result, not just its decision.
    audit = audit_with(org, sets, stored_results(utility=False), criteria={"kid": {"threshold": 10.0}})
    twin = json.loads(json.dumps(build_document(audit, version=1, status="draft", prepared_by=quality_user).to_dict(),
                                 allow_nan=False))
    assert twin["schema"] == "dermaudit.report/2"
    assert twin["criteria"] == detail(quality_client, audit)["criteria"]
    # The PDF's criteria table shows the estimate, its CI and, apart, the number the rule compares.
    summary = next(b for b in twin["sections"][0]["blocks"] if b["type"] == "table")
    assert summary["columns"] == ["Criterion", "Estimate", "95% CI", "Rule compares", "Compared value", "Threshold",
                                  "Status"]
    fd_row = next(row for row in summary["rows"] if row[0] == "fd_upper_ci_over_floor")
    fd = next(c for c in twin["criteria"] if c["name"] == "fd_upper_ci_over_floor")
    assert fd_row[1:] == [fd["value"], [fd["ci_low"], fd["ci_high"]], "upper 95% CI bound", fd["compared_value"],
                          "≤ 1.500", fd["status"]]


def test_the_reports_summary_calls_an_incomplete_verdict_incomplete():
    from auditor.reporting.builder import summary_section
    from auditor.reporting.criteria import evaluate_criteria

    incomplete = passing_results()
    del incomplete["utility"]  # a selected criterion N/A, none failing
    callout = summary_section(evaluate_criteria(Audit(), incomplete)).blocks[0]
    assert callout.level == "warning" and "incomplete, not a pass" in callout.text and "FAIL" not in callout.text
    assert summary_section(evaluate_criteria(Audit(), passing_results())).blocks[0].level == "pass"


# --- the list's filters ----------------------------------------------------------------------------------------------

@pytest.fixture
def audits(org, sets) -> dict[str, Audit]:
    other_reference = ImageSet.objects.create(organisation=org, name="another reference", kind="reference")
    failing = passing_results()
    failing["detectability"]["probe"]["audited"] = auc(0.97, 0.95, 0.99)
    incomplete = passing_results()
    del incomplete["utility"]
    made = {
        "pass": audit_with(org, sets, passing_results(), name="pass"),
        "fail": audit_with(org, sets, failing, name="fail"),
        "incomplete": audit_with(org, sets, incomplete, name="incomplete"),
        "draft": audit_with(org, sets, None, status=Audit.Status.DRAFT, name="draft"),
        "running": audit_with(org, {**sets, "reference": other_reference}, passing_results(),
                              status=Audit.Status.RUNNING, name="running"),
    }
    now = timezone.now()
    for days, audit in enumerate(made.values()):  # pass oldest, running newest
        Audit.objects.filter(pk=audit.pk).update(created_at=now - timedelta(days=10 - days))
    return made


@pytest.fixture
def stranger(other_org):
    """Another organisation with audits of every verdict, and a quality user there."""
    theirs = {kind: ImageSet.objects.create(organisation=other_org, name=f"their {kind}", kind=kind)
              for kind in ("generated", "reference")}
    failing = passing_results()
    failing["detectability"]["probe"]["audited"] = auc(0.97, 0.95, 0.99)
    for name, results, status in (("their pass", passing_results(), "succeeded"), ("their fail", failing, "succeeded"),
                                  ("their draft", None, "draft")):
        audit_with(other_org, theirs, results, status=status, name=name)
    return {"sets": theirs, "user": make_user("quality-b", other_org, Role.QUALITY)}


def test_each_filter(quality_client, audits):
    ids = {name: audit.pk for name, audit in audits.items()}
    assert listed(quality_client) == [ids[n] for n in ("running", "draft", "incomplete", "fail", "pass")]
    assert listed(quality_client, "?verdict=PASS") == [ids["pass"]]
    assert listed(quality_client, "?verdict=FAIL") == [ids["fail"]]
    assert listed(quality_client, "?verdict=INCOMPLETE") == [ids["running"], ids["draft"], ids["incomplete"]]
    assert listed(quality_client, "?status=draft") == [ids["draft"]]
    assert listed(quality_client, "?status=succeeded&verdict=INCOMPLETE") == [ids["incomplete"]]
    generated = audits["pass"].generated_set_id
    assert set(listed(quality_client, f"?generated_set={generated}")) == set(ids.values())
    reference = audits["running"].reference_set_id
    assert listed(quality_client, f"?reference_set={reference}") == [ids["running"]]
    assert listed(quality_client, f"?reference_set={audits['pass'].reference_set_id}&verdict=INCOMPLETE") == [
        ids["draft"], ids["incomplete"]]
    middle = Audit.objects.get(pk=ids["incomplete"]).created_at
    newest_three = [ids["running"], ids["draft"], ids["incomplete"]]
    assert listed(quality_client, "?" + urlencode({"created_after": middle.isoformat()})) == newest_three
    later = (middle + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")  # Z: UTC
    assert listed(quality_client, f"?created_after={later}") == newest_three[:2]
    assert listed(quality_client, "?status=&verdict=") == listed(quality_client)  # empty: no filter
    rows = quality_client.get("/api/audits/?verdict=FAIL").json()["results"]
    assert rows[0]["verdict"] == "FAIL" and any(c["status"] == "FAIL" for c in rows[0]["criteria"])


@pytest.mark.parametrize(("query", "parameter"), [
    ("status=finished", "status"),
    ("verdict=pass", "verdict"),  # the verdicts are upper case, as in the answers
    ("verdict=N/A", "verdict"),
    ("generated_set=abc", "generated_set"),
    ("generated_set=0", "generated_set"),
    ("reference_set=99999999999999999999", "reference_set"),
    ("created_after=yesterday", "created_after"),
    ("created_after=2025-13-01T00:00:00Z", "created_after"),
    ("created_after=9999-12-31T23:59:59-05:00", "created_after"),  # past the largest date once in UTC
])
def test_bad_filter_values_answer_400_naming_the_parameter(quality_client, audits, query, parameter):
    response = quality_client.get(f"/api/audits/?{query}")
    assert response.status_code == 400, response.content
    assert list(response.json()) == [parameter]


def test_filters_apply_to_the_list_only(quality_client, audits):
    assert quality_client.get(f"/api/audits/{audits['draft'].pk}/?status=succeeded&verdict=bogus").status_code == 200


def test_another_organisations_audits_never_appear(quality_client, audits, stranger):
    ours = {audit.pk for audit in audits.values()}
    for query in ("", "?verdict=PASS", "?verdict=FAIL", "?verdict=INCOMPLETE", "?status=succeeded", "?status=draft",
                  f"?generated_set={stranger['sets']['generated'].pk}", "?created_after=2000-01-01T00:00:00Z"):
        assert set(listed(quality_client, query)) <= ours, query
    assert listed(quality_client, f"?generated_set={stranger['sets']['generated'].pk}") == []
    theirs = api_client_for(stranger["user"])
    assert {row["name"] for row in theirs.get("/api/audits/?verdict=PASS").json()["results"]} == {"their pass"}
    assert theirs.get("/api/audits/?verdict=INCOMPLETE").json()["count"] == 1
    assert theirs.get(f"/api/audits/{audits['pass'].pk}/").status_code == 404


def test_the_verdict_filter_is_right_across_pages(quality_client, org, sets):
    failing = passing_results()
    failing["detectability"]["probe"]["audited"] = auc(0.97, 0.95, 0.99)
    # 80 audits, every fourth failing: the 60 that pass fill more than a page (50).
    made = [audit_with(org, sets, failing if i % 4 == 0 else passing_results(), name=f"a{i}") for i in range(80)]
    passing_ids = {audit.pk for i, audit in enumerate(made) if i % 4}
    with CaptureQueriesContext(connection) as queries:
        first = quality_client.get("/api/audits/?verdict=PASS").json()
    assert len(queries) < 25  # stage results are loaded in bulk, not with one query per audit
    second = quality_client.get("/api/audits/?verdict=PASS&page=2").json()
    assert first["count"] == second["count"] == 60 and (len(first["results"]), len(second["results"])) == (50, 10)
    assert {row["id"] for row in first["results"] + second["results"]} == passing_ids
    assert {row["verdict"] for row in first["results"] + second["results"]} == {"PASS"}
    assert quality_client.get("/api/audits/?verdict=PASS&page=3").status_code == 404
    assert quality_client.get("/api/audits/?verdict=FAIL").json()["count"] == 20
    assert quality_client.get("/api/audits/?verdict=INCOMPLETE").json()["count"] == 0
