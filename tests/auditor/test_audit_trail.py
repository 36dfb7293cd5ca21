"""The audit trail: who changed an audit (thresholds and sets), its image sets and its reader study, when, from what
to what; shown on the audit page and by the API, and no endpoint can change or delete it."""
from __future__ import annotations

import pytest
from auditlog.models import LogEntry
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, transaction
from django.urls import URLPattern, URLResolver, get_resolver

from auditor.models import Audit, ImageSet, Role
from auditor.models.trail import trail_of_audit
from tests.auditor.conftest import api_client_for
from tests.reader_study.helpers import build_sets, make_study
from tests.web.pages import table, visible_text

pytestmark = pytest.mark.django_db


@pytest.fixture
def sets(org, quality_user):
    reference = ImageSet.objects.create(organisation=org, name="reference", kind="reference", created_by=quality_user)
    generated = ImageSet.objects.create(organisation=org, name="generated-v1", kind="generated", created_by=quality_user)
    other = ImageSet.objects.create(organisation=org, name="generated-v2", kind="generated", created_by=quality_user)
    return reference, generated, other


@pytest.fixture
def draft(quality_client, sets) -> Audit:
    reference, generated, _ = sets
    created = quality_client.post("/api/audits/", {"name": "draft", "generated_set": generated.pk,
                                                    "reference_set": reference.pk}, format="json")
    assert created.status_code == 201, created.content
    return Audit.objects.get(pk=created.json()["id"])


def _changes(trail: list[dict], field: str) -> list[tuple]:
    return [(entry["who"], change["old"], change["new"]) for entry in trail for change in entry["changes"]
            if change["field"] == field]


def test_a_threshold_edit_is_recorded_with_old_new_and_who(draft, quality_client, quality_user, users):
    url = f"/api/audits/{draft.pk}/"
    assert quality_client.patch(url, {"criteria": {"kid": {"threshold": 0.1}}}, format="json").status_code == 200
    admin = api_client_for(users[Role.ADMIN])
    assert admin.patch(url, {"criteria": {"kid": {"threshold": 0.2}, "recall": {"enabled": False}}},
                       format="json").status_code == 200

    response = quality_client.get(f"/api/audits/{draft.pk}/trail/")
    assert response.status_code == 200
    trail = response.json()
    created = [entry for entry in trail if entry["what"] == f"audit #{draft.pk}" and entry["action"] == "created"]
    assert [entry["who"] for entry in created] == [quality_user.username]  # through the API's token: the actor is known
    assert _changes(trail, "criteria.kid.threshold") == [(quality_user.username, None, 0.1),
                                                         (users[Role.ADMIN].username, 0.1, 0.2)]
    assert _changes(trail, "criteria.recall.enabled") == [(users[Role.ADMIN].username, None, False)]
    assert all(entry["at"].endswith("Z") for entry in trail)
    assert [entry["at"] for entry in trail] == sorted(entry["at"] for entry in trail)


def test_set_changes_and_the_sets_and_reader_study_own_edits_are_in_the_trail(
        draft, sets, quality_client, quality_user, org, isic_dir, tmp_path):
    reference, generated, other = sets
    assert quality_client.patch(f"/api/audits/{draft.pk}/", {"generated_set": other.pk}, format="json").status_code == 200
    assert quality_client.patch(f"/api/image-sets/{other.pk}/", {"description": "second run"},
                                format="json").status_code == 200
    real, synthetic = build_sets(org, isic_dir, tmp_path)
    study = make_study(org, real, synthetic, created_by=quality_user)
    assert quality_client.patch(f"/api/audits/{draft.pk}/", {"reader_study": study.pk}, format="json").status_code == 200
    assert quality_client.post(f"/api/reader-studies/{study.pk}/close/").status_code == 200

    trail = quality_client.get(f"/api/audits/{draft.pk}/trail/").json()
    assert (quality_user.username, f"#{generated.pk} generated-v1", f"#{other.pk} generated-v2") in _changes(trail, "generated_set")
    described = [e for e in trail if e["what"] == f"generated set #{other.pk}" and e["action"] == "changed"]
    assert [(e["who"], e["changes"]) for e in described] == [
        (quality_user.username, [{"field": "description", "old": "", "new": "second run"}])]
    closed = [e for e in trail if e["what"] == f"reader study #{study.pk}" and e["action"] == "changed"]
    assert closed and closed[-1]["who"] == quality_user.username
    assert {"field": "status", "old": "draft", "new": "closed"} in closed[-1]["changes"]


def test_the_audit_page_shows_the_trail(draft, quality_client, quality_user, client):
    quality_client.patch(f"/api/audits/{draft.pk}/", {"criteria": {"kid": {"threshold": 0.1}}}, format="json")
    client.force_login(quality_user)
    html = client.get(f"/audits/{draft.pk}/").content.decode()
    rows = table(html, id="audit-trail")
    assert rows[0] == ["When (UTC)", "Who", "What", "Change"]
    edit = [row for row in rows[1:] if "criteria.kid.threshold" in row[3]]
    assert len(edit) == 1 and edit[0][1] == quality_user.username and edit[0][2] == f"audit #{draft.pk} changed"
    assert "criteria.kid.threshold: 0.1" in edit[0][3]
    assert "Audit trail" in visible_text(html)


def _named_urls(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _named_urls(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.name


def test_no_endpoint_edits_the_trail(draft, quality_client, users, client):
    quality_client.patch(f"/api/audits/{draft.pk}/", {"criteria": {"kid": {"threshold": 0.1}}}, format="json")
    before = list(LogEntry.objects.order_by("pk").values())
    admin = api_client_for(users[Role.ADMIN])
    url = f"/api/audits/{draft.pk}/trail/"
    for method in ("post", "put", "patch", "delete"):
        assert getattr(admin, method)(url, {"changes": []}, format="json").status_code == 405, method
    # The only routes to trail entries are that read-only action and auditlog's admin, which refuses every change,
    # even to a superuser.
    routes = [route for route, name in _named_urls(get_resolver().url_patterns)
              if "trail" in route or "logentry" in route or (name or "").startswith("auditlog")]
    assert routes and all("trail" in route or route.startswith("admin/auditlog/logentry/") for route in routes), routes
    superuser = get_user_model().objects.create_superuser("root", "root@example.org", "root-password")
    client.force_login(superuser)
    entry = LogEntry.objects.first()
    assert client.get("/admin/auditlog/logentry/add/").status_code == 403
    assert client.post(f"/admin/auditlog/logentry/{entry.pk}/change/", {"changes_text": "x"}).status_code == 403
    assert client.post(f"/admin/auditlog/logentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.post("/admin/auditlog/logentry/", {"action": "delete_selected",
                                                    "_selected_action": [entry.pk]}).status_code in (200, 302)
    # Below every endpoint, the database refuses to change an entry.
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE auditlog_logentry SET changes_text = 'x'")
    assert list(LogEntry.objects.order_by("pk").values()) == before
    assert _changes(trail_of_audit(draft), "criteria.kid.threshold")
