"""Designing a study (API and web), its cases, readers' orders and the open → pause → close life cycle."""
from __future__ import annotations

import pytest
from django.test import Client

from auditor.models import Organisation
from reader_study.models import Assignment, Showing, Study
from reader_study.sampling import min_cases_between_repeats, reading_order
from reader_study.services import StudyError, invite_readers
from tests.auditor.conftest import api_client_for

from .helpers import build_sets, make_reader, make_study

pytestmark = pytest.mark.django_db


def test_quality_user_designs_a_study_through_the_api(org, image_sets, quality_user):
    real, synthetic = image_sets
    payload = {
        "name": "pilot", "arms": [{"image_set": synthetic.pk, "count": 3}, {"image_set": real.pk, "count": 2}],
        "repeat_fraction": 0.2, "confidence_scale": "percent", "ask_diagnosis": True, "image_size": 96, "seed": 11,
    }
    response = api_client_for(quality_user).post("/api/reader-studies/", payload, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "draft" and body["case_count"] == 5 and body["seed"] == 11
    assert sorted(body["diagnosis_choices"]) == ["melanoma", "nevus"]
    assert {(a["label"], a["count"], a["truth"]) for a in body["arms"]} == {("gan", 3, "synthetic"), ("isic", 2, "real")}
    study = Study.objects.get(pk=body["id"])
    assert study.cases.filter(truth_synthetic=True).count() == 3
    assert set(study.cases.filter(truth_synthetic=True).values_list("image__image_set", flat=True)) == {synthetic.pk}


def test_design_is_reproducible_from_its_seed(org, image_sets):
    real, synthetic = image_sets
    first = make_study(org, real, synthetic, n_real=2, n_synthetic=2, name="a", seed=5)
    again = make_study(org, real, synthetic, n_real=2, n_synthetic=2, name="b", seed=5)
    assert list(first.cases.values_list("image_id", flat=True)) == list(again.cases.values_list("image_id", flat=True))


@pytest.mark.parametrize("change, message", [
    ({"arms": "only_synthetic"}, "at least one generated and at least one reference"),
    ({"arms": "other_org"}, "organisation"),
    ({"count": 99}, "asked for 99"),
    ({"repeat_fraction": 0.9}, "repeat"),
])
def test_impossible_designs_are_refused_with_a_reason(org, image_sets, quality_user, isic_dir, tmp_path, change, message):
    real, synthetic = image_sets
    arms = [{"image_set": synthetic.pk, "count": change.get("count", 2)}, {"image_set": real.pk, "count": 2}]
    if change.get("arms") == "only_synthetic":
        arms = arms[:1]
    if change.get("arms") == "other_org":
        other_real, _ = build_sets(Organisation.objects.create(name="B"), isic_dir, tmp_path / "b", 1, 1, tag="b")
        arms[1]["image_set"] = other_real.pk
    payload = {"name": "x", "arms": arms, "repeat_fraction": change.get("repeat_fraction", 0.0)}
    response = api_client_for(quality_user).post("/api/reader-studies/", payload, format="json")
    assert response.status_code == 400
    assert message in str(response.json())
    assert not Study.objects.exists()


def test_balancing_gives_every_arm_the_same_label_mix(org, isic_dir, tmp_path):
    real, synthetic = build_sets(org, isic_dir, tmp_path, n_real=6, n_synthetic=6)
    study = make_study(org, real, synthetic, n_real=4, n_synthetic=4, balance_by="diagnosis")
    for truth in (True, False):
        labels = sorted(study.cases.filter(truth_synthetic=truth).values_list("reference_diagnosis", flat=True))
        assert labels == ["melanoma", "melanoma", "nevus", "nevus"]


def test_web_form_creates_a_study(org, image_sets, quality_user):
    real, synthetic = image_sets
    client = Client()
    client.force_login(quality_user)
    form = {"name": "web study", "repeat_fraction": "0.25", "confidence_scale": "five_point", "ask_call": "on",
            "ask_quality": "on", "image_size": "128", f"count_{real.pk}": "3", f"count_{synthetic.pk}": "4"}
    response = client.post("/studies/manage/new/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    study = Study.objects.get(name="web study")
    assert study.cases.count() == 7 and study.repeat_fraction == 0.25
    assert client.get(response.url).status_code == 200


def test_each_reader_gets_an_own_reproducible_order_with_late_non_adjacent_repeats(org, image_sets):
    real, synthetic = image_sets
    study = make_study(org, real, synthetic, repeat_fraction=0.25)
    readers = [make_reader(f"r{i}", org) for i in range(3)]
    assignments = invite_readers(study, readers)
    orders = [list(a.showings.order_by("position").values_list("case_id", "number")) for a in assignments]
    assert len({tuple(o) for o in orders}) == 3, "readers must not share one order"
    n_cases = study.cases.count()
    for assignment, order in zip(assignments, orders):
        assert sorted(c for c, n in order if n == 1) == sorted(study.cases.values_list("pk", flat=True))
        repeats = [c for c, n in order if n == 2]
        assert len(repeats) == 2
        for case in repeats:
            gap = order.index((case, 2)) - order.index((case, 1)) - 1
            assert gap >= min_cases_between_repeats(n_cases) >= 1
        # The stored order is the one the seed gives: reproducible outside the database.
        case_ids = list(study.cases.values_list("pk", flat=True))
        assert reading_order(case_ids, study.repeat_fraction, assignment.order_seed) == order
    # Inviting again changes nothing.
    invite_readers(study, readers)
    assert Showing.objects.filter(assignment__study=study).count() == 3 * (n_cases + 2)


def test_only_members_with_the_reader_role_can_be_invited(org, study, quality_user):
    outsider = make_reader("outsider", Organisation.objects.create(name="B"))
    for user in (quality_user, outsider):
        with pytest.raises(StudyError):
            invite_readers(study, [user])
    assert not Assignment.objects.exists()
    response = api_client_for(quality_user).post(f"/api/reader-studies/{study.pk}/invite/",
                                                 {"readers": [outsider.pk]}, format="json")
    assert response.status_code == 400


def test_life_cycle_open_pause_close_and_closing_freezes(org, study, reader, quality_user,
                                                        django_capture_on_commit_callbacks):
    api = api_client_for(quality_user)
    assert api.post(f"/api/reader-studies/{study.pk}/pause/").status_code == 409  # a draft cannot pause
    assert api.post(f"/api/reader-studies/{study.pk}/open/").json() == {"status": "open"}
    assert api.post(f"/api/reader-studies/{study.pk}/pause/").json() == {"status": "paused"}
    assert api.post(f"/api/reader-studies/{study.pk}/open/").json() == {"status": "open"}
    with django_capture_on_commit_callbacks(execute=True):  # closing queues the results computation
        assert api.post(f"/api/reader-studies/{study.pk}/close/").json() == {"status": "closed"}
    for action in ("open", "pause", "close"):
        assert api.post(f"/api/reader-studies/{study.pk}/{action}/").status_code == 409
    study.refresh_from_db()
    with pytest.raises(StudyError):
        invite_readers(study, [reader])
    assert study.closed_at is not None and hasattr(study, "result")


def test_web_status_buttons(org, study, quality_user):
    client = Client()
    client.force_login(quality_user)
    assert client.post(f"/studies/manage/{study.pk}/status/", {"action": "open"}).status_code == 302
    study.refresh_from_db()
    assert study.status == Study.Status.OPEN
    page = client.get(f"/studies/manage/{study.pk}/").content.decode()
    assert 'value="pause"' in page and 'value="close"' in page
