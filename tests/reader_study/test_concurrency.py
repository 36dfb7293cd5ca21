"""Concurrent readers and double submits against a real database (run on PostgreSQL in CI): no answer is
lost, none is duplicated, and a close is atomic with respect to answers being stored."""
from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection

from reader_study.models import Answer, Showing, Study
from reader_study.services import close_study, invite_readers, open_study
from tests.auditor.conftest import api_client_for

from .helpers import ANSWER, build_sets, make_reader, make_study

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def running(isic_dir, tmp_path):
    from auditor.models import Organisation

    org = Organisation.objects.create(name="Busy clinic")
    real, synthetic = build_sets(org, isic_dir, tmp_path, 4, 4)
    study = make_study(org, real, synthetic, repeat_fraction=0.25)
    readers = [make_reader(f"reader-{i}", org) for i in range(6)]
    invite_readers(study, readers)
    open_study(study)
    return study, readers


def _in_thread(work, results: list, errors: list):
    def run():
        try:
            results.extend(work())
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)
        finally:
            connection.close()
    return threading.Thread(target=run)


def test_concurrent_double_submits_store_each_answer_exactly_once(running):
    study, readers = running
    results, errors, threads = [], [], []
    for reader in readers:
        tokens = list(Showing.objects.filter(assignment__reader=reader).order_by("position").values_list("token", flat=True))
        barrier = threading.Barrier(2)

        def submit_all(reader=reader, tokens=tokens, barrier=barrier):
            api, statuses = api_client_for(reader), []
            for token in tokens:
                barrier.wait(timeout=60)  # both copies of the form go out together
                response = api.post(f"/api/reader/cases/{token}/answer/", ANSWER, format="json")
                statuses.append((token, response.status_code))
            return statuses

        threads += [_in_thread(submit_all, results, errors) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    showings = Showing.objects.filter(assignment__study=study).count()
    assert len(results) == 2 * showings
    created = Counter(token for token, status in results if status == 201)
    assert set(status for _, status in results) <= {200, 201}
    assert len(created) == showings and set(created.values()) == {1}  # exactly one winner per showing
    assert Answer.objects.count() == showings  # none lost, none duplicated
    assert Showing.objects.filter(assignment__study=study, answer__isnull=True).count() == 0


def test_close_during_submissions_loses_nothing_and_lets_nothing_in_after(running):
    study, readers = running
    results, errors, threads = [], [], []
    started, closing = threading.Event(), threading.Event()
    for reader in readers:
        tokens = list(Showing.objects.filter(assignment__reader=reader).order_by("position").values_list("token", flat=True))

        def submit_all(reader=reader, tokens=tokens):
            api, statuses = api_client_for(reader), []
            for token in tokens:
                response = api.post(f"/api/reader/cases/{token}/answer/", ANSWER, format="json")
                statuses.append((token, response.status_code))
                if not started.is_set():
                    started.set()
                # Keep answering once the close is under way, so it always lands mid-stream (on a fast machine the
                # readers would otherwise finish first and the race would not be tested).
                closing.wait(timeout=60)
            return statuses

        threads.append(_in_thread(submit_all, results, errors))
    for thread in threads:
        thread.start()
    assert started.wait(timeout=60)
    closing.set()
    close_study(Study.objects.get(pk=study.pk))
    connection.close()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    study.refresh_from_db()
    stored = set(Answer.objects.values_list("showing__token", flat=True))
    accepted = {token for token, status in results if status == 201}
    refused = {token for token, status in results if status == 409}
    assert accepted == stored and not (accepted & refused)  # every 201 was kept; nothing refused was kept
    assert accepted and refused, "the close must land while readers are answering"
    assert all(a.answered_at <= study.closed_at for a in Answer.objects.all())
