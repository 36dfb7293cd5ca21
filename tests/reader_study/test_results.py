"""Results of a simulated study: every number in the payload must be what the statistics library gives for
the answers in the CSV export (so the app gathers the right answers), plus a few hand-checkable cases."""
from __future__ import annotations

import hashlib
import io

import pandas as pd
import pytest

from reader_study import statistics as stats
from reader_study.models import Showing, StudyResult
from reader_study.services import AnswerValues, close_study, invite_readers, open_study, submit_answer
from tests.auditor.conftest import api_client_for

from .helpers import make_reader, make_study, web_client

pytestmark = pytest.mark.django_db


def _simulated_answer(reader_index: int, showing: Showing) -> AnswerValues:
    """Reader 0 calls everything synthetic; readers 1 and 2 are right except on some cases."""
    truth = showing.case.truth_synthetic
    key = (showing.case_id * 7 + reader_index * 3 + showing.number) % 5
    called = True if reader_index == 0 else (truth if key else not truth)
    return AnswerValues(called_synthetic=called, confidence=1 + key, quality=2 + truth + (key == 0),
                        diagnosis=showing.case.reference_diagnosis if key % 2 else "melanoma")


@pytest.fixture
def closed_study(org, image_sets, quality_user):
    real, synthetic = image_sets
    study = make_study(org, real, synthetic, repeat_fraction=0.25, ask_diagnosis=True, created_by=quality_user)
    readers = [make_reader(f"reader-{i}", org) for i in range(3)]
    invite_readers(study, readers)
    open_study(study)
    for index, reader in enumerate(readers):
        for showing in Showing.objects.filter(assignment__reader=reader).select_related("case").order_by("position"):
            submit_answer(showing, _simulated_answer(index, showing))
    return close_study(study)


def test_results_match_the_statistics_of_the_exported_answers(closed_study, quality_user):
    api = api_client_for(quality_user)
    csv_text = api.get(f"/api/reader-studies/{closed_study.pk}/answers/").content.decode()
    table = pd.read_csv(io.StringIO(csv_text))
    assert len(table) == 3 * (8 + 2) and table.duplicated(["reader", "case", "showing"]).sum() == 0
    result = api.get(f"/api/reader-studies/{closed_study.pk}/results/").json()
    assert result["provenance"]["answers_sha256"] == hashlib.sha256(csv_text.encode()).hexdigest()
    first = table[table.showing == 1]

    by_reader = {row["reader"]: row for row in result["readers"]}
    for reader, answers in first.groupby("reader"):
        expected = stats.reader_performance(
            answers.truth == "synthetic", answers["call"] == "synthetic",
            stats.signed_confidence(answers["call"] == "synthetic", answers.confidence), reader=reader)
        assert by_reader[reader]["performance"] == stats.to_jsonable(expected)
        assert by_reader[reader]["intra_reader_kappa"]["n_items"] == 2
    always_synthetic = by_reader["reader-0"]["performance"]
    assert (always_synthetic["sensitivity"]["estimate"], always_synthetic["specificity"]["estimate"]) == (1.0, 0.0)
    assert always_synthetic["accuracy"]["estimate"] == 0.5

    ratings = first.assign(
        modality="study", truth=(first.truth == "synthetic").astype(int), case=first.case.astype(str),
        rating=stats.signed_confidence(first["call"] == "synthetic", first.confidence))
    mrmc = stats.analyze_single_modality(stats.mrmc_data_from_table(ratings), "study", covariance="unbiased")
    reported = result["mrmc"]["all_synthetic_vs_real"]
    assert reported["auc"] == pytest.approx(mrmc.auc) and reported["ci_low"] == pytest.approx(mrmc.ci_low)
    assert reported["df"] == pytest.approx(mrmc.df) and reported["readers_included"] == ["reader-0", "reader-1", "reader-2"]

    assert len(result["pairwise_kappa"]) == 3 and result["fleiss_kappa"]["n_items"] == 8
    quality = result["quality"]
    assert quality["mean_real"] == pytest.approx(first[first.truth == "real"].quality.mean())
    assert quality["mean_synthetic"] == pytest.approx(first[first.truth == "synthetic"].quality.mean())
    diagnosis = result["diagnosis"]["all"]["accuracy"]
    assert diagnosis["total"] == 24
    assert diagnosis["successes"] == int((first.diagnosis == first.reference_diagnosis).sum())


def test_results_are_computed_once_and_frozen(closed_study, quality_user):
    api = api_client_for(quality_user)
    first = api.get(f"/api/reader-studies/{closed_study.pk}/results/").json()
    second = api.get(f"/api/reader-studies/{closed_study.pk}/results/").json()
    assert first == second and StudyResult.objects.filter(study=closed_study).count() == 1
    page = web_client(quality_user).get(f"/studies/manage/{closed_study.pk}/results/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f"{first['mrmc']['all_synthetic_vs_real']['auc']:.4f}" in html and "reader-2" in html


def test_interim_view_is_labelled_and_not_stored(org, study, quality_user):
    reader = make_reader("early", org)
    invite_readers(study, [reader])
    open_study(study)
    showing = Showing.objects.filter(assignment__reader=reader).order_by("position").first()
    submit_answer(showing, AnswerValues(called_synthetic=True, confidence=3, quality=4))
    body = api_client_for(quality_user).get(f"/api/reader-studies/{study.pk}/results/?interim=1").json()
    assert body["interim"] is True and body["counts"]["answers"] == 1
    assert "error" in body["mrmc"]["all_synthetic_vs_real"]  # one reader, one case: said, not crashed
    assert not StudyResult.objects.exists()
    html = web_client(quality_user).get(f"/studies/manage/{study.pk}/results/?interim=1").content.decode()
    assert "interim" in html


def test_audit_report_uses_the_linked_studys_reader_averaged_auc(closed_study, org, image_sets, quality_user):
    """The audit's reader section and its reader_auc criterion read the study's stored OR-Hillis result."""
    from auditor.models import Audit
    from auditor.reporting.criteria import evaluate_criteria, reader_summary
    from auditor.reporting.sections import reader_section

    real, synthetic = image_sets
    audit = Audit.objects.create(organisation=org, name="with readers", created_by=quality_user, generated_set=synthetic,
                                 reference_set=real, reader_study=closed_study,
                                 criteria={"reader_auc": {"enabled": True, "threshold": 0.99}})
    summary = reader_summary(audit)  # computes and freezes the study's results on first use
    stored = StudyResult.objects.get(study=closed_study).payload["mrmc"]["all_synthetic_vs_real"]
    assert stored["auc"] is not None
    assert (summary["auc"], summary["ci_low"], summary["ci_high"], summary["df"]) == (
        stored["auc"], stored["ci_low"], stored["ci_high"], stored["df"])

    row = next(r for r in evaluate_criteria(audit, results={}) if r["name"] == "reader_auc")
    assert row["reason"] is None and row["value"] == stored["ci_high"]
    assert row["status"] == ("PASS" if stored["ci_high"] <= 0.99 else "FAIL")

    blocks = reader_section(audit).blocks
    facts = dict(row for block in blocks if type(block).__name__ == "Facts" for row in block.rows)
    table = next(block for block in blocks if type(block).__name__ == "Table")
    assert [row[0] for row in table.rows] == ["reader-0", "reader-1", "reader-2"]
    assert table.rows[0][2] == 0.5  # reader-0 calls everything synthetic
    assert {"Fleiss' kappa across readers", "Pairwise Cohen's kappa (range over reader pairs)",
            "Image quality (Likert), real vs synthetic"} <= set(facts)
    assert facts["Reader-averaged AUC (OR-Hillis, random readers and cases)"].startswith(
        f"{stored['auc']:.3f} [{stored['ci_low']:.3f}, {stored['ci_high']:.3f}]")
