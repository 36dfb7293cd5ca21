"""Answering: one answer per reader × case × showing (database-enforced), double submits, server-side time,
final answers unless the study allows changes, paused and closed studies, and resuming after logout."""
from __future__ import annotations

import datetime

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from reader_study.models import Answer, Showing
from reader_study.services import close_study, invite_readers, open_study, pause_study
from tests.auditor.conftest import api_client_for

from .helpers import ANSWER, current_token, make_reader, make_study, web_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def running(study, reader):
    invite_readers(study, [reader])
    return open_study(study)


def test_the_database_refuses_a_second_answer_to_a_showing(running, reader):
    showing = Showing.objects.filter(assignment__reader=reader).first()
    now = timezone.now()
    Answer.objects.create(showing=showing, called_synthetic=True, served_at=now, answered_at=now, duration_ms=0)
    with pytest.raises(IntegrityError), transaction.atomic():
        Answer.objects.create(showing=showing, called_synthetic=False, served_at=now, answered_at=now, duration_ms=0)


def test_double_submitted_form_stores_one_answer_and_moves_on(running, reader):
    client = web_client(reader)
    token = current_token(client.get(f"/studies/{running.pk}/read/").content.decode())
    first = client.post(f"/studies/{running.pk}/read/", {**ANSWER, "token": token})
    second = client.post(f"/studies/{running.pk}/read/", {**ANSWER, "call": "real", "token": token})
    assert first.status_code == second.status_code == 302
    answers = Answer.objects.filter(showing__token=token)
    assert answers.count() == 1 and answers.get().called_synthetic is True  # the first one stands
    assert current_token(client.get(f"/studies/{running.pk}/read/").content.decode()) != token


def test_api_answer_is_created_once(running, reader):
    api = api_client_for(reader)
    assignment = api.get("/api/reader/assignments/").json()["results"][0]
    case = api.get(f"/api/reader/assignments/{assignment['id']}/next/").json()["case"]
    url = f"/api/reader/cases/{case['token']}/answer/"
    created = api.post(url, {"call": "real", "confidence": 2, "quality": 5}, format="json")
    again = api.post(url, {"call": "synthetic", "confidence": 5, "quality": 1}, format="json")
    assert (created.status_code, created.json()["stored"]) == (201, True)
    assert (again.status_code, again.json()["stored"]) == (200, False)
    assert Answer.objects.get(showing__token=case["token"]).confidence == 2
    assert api.get(f"/api/reader/assignments/{assignment['id']}/next/").json()["progress"]["answered"] == 1


def test_time_per_case_is_measured_on_the_server(running, reader):
    client = web_client(reader)
    token = current_token(client.get(f"/studies/{running.pk}/read/").content.decode())
    served = Showing.objects.get(token=token).last_served_at
    Showing.objects.filter(token=token).update(last_served_at=served - datetime.timedelta(seconds=42))
    client.post(f"/studies/{running.pk}/read/", {**ANSWER, "token": token, "duration_ms": "1"})  # client value ignored
    answer = Answer.objects.get(showing__token=token)
    assert 42_000 <= answer.duration_ms < 60_000
    assert answer.served_at == served - datetime.timedelta(seconds=42)


@pytest.mark.parametrize("bad, field", [
    ({"call": "maybe"}, "call"), ({"confidence": "6"}, "confidence"), ({"quality": "0"}, "quality"),
    ({"confidence": ""}, "confidence"),
])
def test_invalid_answers_are_refused_and_nothing_is_stored(running, reader, bad, field):
    client = web_client(reader)
    token = current_token(client.get(f"/studies/{running.pk}/read/").content.decode())
    response = client.post(f"/studies/{running.pk}/read/", {**ANSWER, **bad, "token": token})
    assert response.status_code == 400 and current_token(response.content.decode()) == token
    assert not Answer.objects.exists()
    api = api_client_for(reader)
    assert api.post(f"/api/reader/cases/{token}/answer/", {**ANSWER, **bad}, format="json").status_code == 400


def test_answers_are_final_unless_the_study_allows_changes(org, image_sets, reader):
    real, synthetic = image_sets
    for allow, expected in ((False, 409), (True, 200)):
        study = make_study(org, real, synthetic, name=f"changes-{allow}", allow_changes=allow)
        invite_readers(study, [reader])
        open_study(study)
        api = api_client_for(reader)
        token = Showing.objects.filter(assignment__study=study).order_by("position").first().token
        api.post(f"/api/reader/cases/{token}/answer/", {"call": "real", "confidence": 1, "quality": 1}, format="json")
        changed = api.put(f"/api/reader/cases/{token}/answer/", {"call": "synthetic", "confidence": 5, "quality": 5}, format="json")
        assert changed.status_code == expected
        answer = Answer.objects.get(showing__token=token)
        assert answer.called_synthetic is allow and answer.revisions == int(allow)


def test_web_revisit_changes_an_earlier_answer(org, image_sets, reader):
    real, synthetic = image_sets
    study = make_study(org, real, synthetic, allow_changes=True)
    invite_readers(study, [reader])
    open_study(study)
    client = web_client(reader)
    first = current_token(client.get(f"/studies/{study.pk}/read/").content.decode())
    client.post(f"/studies/{study.pk}/read/", {**ANSWER, "token": first})
    page = client.get(f"/studies/{study.pk}/read/").content.decode()
    assert f"/studies/{study.pk}/read/{first}/" in page  # the "previous" link
    revisit = client.get(f"/studies/{study.pk}/read/{first}/").content.decode()
    assert 'value="synthetic" data-key="s" checked' in revisit
    client.post(f"/studies/{study.pk}/read/{first}/", {**ANSWER, "call": "real", "token": first})
    assert Answer.objects.get(showing__token=first).called_synthetic is False


def test_paused_and_closed_studies_take_no_answers(running, reader):
    api = api_client_for(reader)
    token = Showing.objects.filter(assignment__reader=reader).order_by("position").first().token
    pause_study(running)
    assert api.post(f"/api/reader/cases/{token}/answer/", ANSWER, format="json").status_code == 409
    page = web_client(reader).get(f"/studies/{running.pk}/read/").content.decode()
    assert "paused" in page and 'name="token"' not in page
    open_study(running)
    close_study(running)
    assert api.post(f"/api/reader/cases/{token}/answer/", ANSWER, format="json").status_code == 409
    response = web_client(reader).post(f"/studies/{running.pk}/read/", {**ANSWER, "token": token})
    assert response.status_code == 302
    assert not Answer.objects.exists()


def test_reader_resumes_where_they_left_off_after_logout(running, reader):
    client = web_client(reader)
    answered = []
    for _ in range(3):
        token = current_token(client.get(f"/studies/{running.pk}/read/").content.decode())
        client.post(f"/studies/{running.pk}/read/", {**ANSWER, "token": token})
        answered.append(token)
    client.post("/logout/")
    assert client.get(f"/studies/{running.pk}/read/").status_code == 302  # to the login page
    client = web_client(reader)
    page = client.get(f"/studies/{running.pk}/read/").content.decode()
    expected = Showing.objects.filter(assignment__reader=reader, answer__isnull=True).order_by("position").first()
    assert current_token(page) == expected.token and expected.position == 3
    assert "3 of 8 answered" in page


def test_reader_without_a_profile_is_asked_for_one_first(running, org):
    newcomer = make_reader("newcomer", org, profile=False)
    invite_readers(running, [newcomer])
    client = web_client(newcomer)
    response = client.get(f"/studies/{running.pk}/read/")
    assert response.status_code == 302 and response.url.startswith("/studies/profile/")
    saved = client.post(response.url, {"specialty": "dermatology", "years_experience": "3", "board_certified": "on"})
    assert saved.status_code == 302 and saved.url == f"/studies/{running.pk}/read/"
    assert 'name="token"' in client.get(saved.url).content.decode()


def test_finishing_shows_a_thank_you_and_no_correctness_feedback_until_close(running, reader):
    client = web_client(reader)
    while 'name="token"' in (page := client.get(f"/studies/{running.pk}/read/").content.decode()):
        client.post(f"/studies/{running.pk}/read/", {**ANSWER, "token": current_token(page)})
    assert "All cases answered" in page and "correct" not in page
    assert "correct" not in client.get("/studies/").content.decode()
    close_study(running)
    assert "4 of 8 correct" in client.get("/studies/").content.decode()  # every call was "synthetic": 4 of 8
