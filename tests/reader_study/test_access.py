"""A reader reaches only their own cases; managers only their organisation's studies; results only after close."""
from __future__ import annotations

import pytest

from auditor.models import Membership, Organisation, Role
from reader_study.models import Answer, Showing
from reader_study.services import close_study, invite_readers, open_study
from tests.auditor.conftest import api_client_for

from .helpers import ANSWER, build_sets, make_reader, make_study, make_user, web_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_readers(org, study):
    alice, bob = make_reader("alice", org), make_reader("bob", org)
    invite_readers(study, [alice, bob])
    open_study(study)
    return alice, bob


def test_a_reader_cannot_reach_another_readers_cases(study, two_readers):
    alice, bob = two_readers
    bobs = Showing.objects.filter(assignment__reader=bob).order_by("position")
    Answer.objects.create(showing=bobs[0], called_synthetic=True, served_at=bobs[0].assignment.invited_at,
                          answered_at=bobs[0].assignment.invited_at, duration_ms=1)
    api, web = api_client_for(alice), web_client(alice)
    for token in (bobs[0].token, bobs[1].token):
        assert api.get(f"/api/reader/cases/{token}/image/").status_code == 404
        assert api.post(f"/api/reader/cases/{token}/answer/", ANSWER, format="json").status_code == 404
        assert api.put(f"/api/reader/cases/{token}/answer/", ANSWER, format="json").status_code == 404
        assert web.post(f"/studies/{study.pk}/read/", {**ANSWER, "token": token}).status_code == 404
        assert web.get(f"/studies/{study.pk}/read/{token}/").status_code == 404
    bobs_assignment = bobs[0].assignment_id
    assert api.get(f"/api/reader/assignments/{bobs_assignment}/next/").status_code == 404
    assert [a["id"] for a in api.get("/api/reader/assignments/").json()["results"]] != [bobs_assignment]
    assert Answer.objects.count() == 1 and Answer.objects.get().called_synthetic is True


def test_a_reader_sees_no_study_they_were_not_invited_to(org, image_sets, two_readers):
    alice, _ = two_readers
    real, synthetic = image_sets
    other = make_study(org, real, synthetic, name="not for alice")
    open_study(other)
    assert web_client(alice).get(f"/studies/{other.pk}/read/").status_code == 404
    studies = [a["study_name"] for a in api_client_for(alice).get("/api/reader/assignments/").json()["results"]]
    assert "not for alice" not in studies and len(studies) == 1
    home = web_client(alice).get("/studies/").content.decode()
    assert "not for alice" not in home


def test_readers_have_no_access_to_design_results_or_image_sets(study, two_readers):
    alice, _ = two_readers
    api, web = api_client_for(alice), web_client(alice)
    for url in (f"/api/reader-studies/{study.pk}/", f"/api/reader-studies/{study.pk}/results/?interim=1",
                f"/api/reader-studies/{study.pk}/answers/", "/api/reader-studies/", "/api/image-sets/", "/api/images/"):
        assert api.get(url).status_code == 403, url
    for url in (f"/studies/manage/{study.pk}/", f"/studies/manage/{study.pk}/results/?interim=1", "/sets/"):
        assert web.get(url).status_code == 403, url


def test_losing_the_reader_role_closes_the_door(study, two_readers):
    alice, _ = two_readers
    token = Showing.objects.filter(assignment__reader=alice).first().token
    Membership.objects.filter(user=alice).update(role=Role.DEVELOPER)
    assert api_client_for(alice).get(f"/api/reader/cases/{token}/image/").status_code == 403
    assert web_client(alice).get(f"/studies/{study.pk}/read/").status_code == 403


def test_results_are_for_the_organisations_managers_after_close(org, study, two_readers, quality_user):
    developer, admin = make_user("dev", org, Role.DEVELOPER), make_user("adm", org, Role.ADMIN)
    url = f"/api/reader-studies/{study.pk}/results/"
    assert api_client_for(quality_user).get(url).status_code == 409  # not before close …
    assert api_client_for(quality_user).get(url + "?interim=1").json()["interim"] is True  # … unless asked, by quality
    assert api_client_for(admin).get(url + "?interim=1").status_code == 200
    assert api_client_for(developer).get(url + "?interim=1").status_code == 403
    close_study(study)
    for user in (quality_user, admin, developer):
        body = api_client_for(user).get(url).json()
        assert body["interim"] is False and body["study"]["id"] == study.pk


def test_another_organisations_managers_see_nothing(org, study, isic_dir, tmp_path):
    other = Organisation.objects.create(name="Clinic B")
    stranger = make_user("stranger", other, Role.QUALITY)
    real, synthetic = build_sets(other, isic_dir, tmp_path / "b", 2, 2, tag="b")
    theirs = make_study(other, real, synthetic, name="theirs")
    api = api_client_for(stranger)
    assert [s["name"] for s in api.get("/api/reader-studies/").json()["results"]] == ["theirs"]
    for suffix in ("", "results/?interim=1", "answers/?interim=1"):
        assert api.get(f"/api/reader-studies/{study.pk}/{suffix}").status_code == 404
    assert api.post(f"/api/reader-studies/{study.pk}/close/").status_code == 404
    assert web_client(stranger).get(f"/studies/manage/{study.pk}/").status_code == 404
    # Arms must come from the study's own organisation, even when the caller can read both.
    mine = study.arms.first().image_set_id
    response = api.post("/api/reader-studies/", {"name": "mix", "arms": [{"image_set": mine, "count": 1},
                        {"image_set": real.pk, "count": 1}]}, format="json")
    assert response.status_code == 400 and theirs.pk
