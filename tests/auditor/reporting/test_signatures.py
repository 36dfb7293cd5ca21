"""Approval is an electronic signature: password again, meaning and reason; the preparer is refused; the signature is
recorded (append-only) with the signed PDF's SHA-256 and printed in the sign-off section of the version it issues."""
from __future__ import annotations

import json

import pytest
from django.db import DatabaseError, connection, transaction
from pypdf import PdfReader

from auditor.models import Report, Role, Signature
from auditor.models.signatures import AppendOnlyError
from auditor.reporting.issuing import failed_criteria
from tests.auditor.conftest import api_client_for, make_user
from tests.web.pages import visible_text
from tests.web.worlds import audit_sets, finished_audit

pytestmark = pytest.mark.django_db
PASSWORD = "correct-horse-battery"  # tests/auditor/conftest.py make_user
SIGN = {"password": PASSWORD, "meaning": "approved",
        "reason": "Reviewed the failed criteria with the QA lead; accepted for training only."}


@pytest.fixture
def sets(org, isic_dir, pad_dir, tmp_path):
    return audit_sets(org, isic_dir, pad_dir, tmp_path)


@pytest.fixture
def audit(org, quality_user, sets):
    """Prepared by the quality user; its criteria fail (clinical photos posing as generated dermoscopy)."""
    return finished_audit(org, quality_user, sets)


@pytest.fixture
def admin(users):
    return users[Role.ADMIN]


def _pdf_text(report: Report) -> str:
    return "".join("".join(page.extract_text() for page in PdfReader(report.pdf_path).pages).split())


def _nothing_signed(audit) -> None:
    assert not Signature.objects.exists()
    assert list(audit.reports.values_list("version", flat=True)) == [1]


def test_the_api_refuses_a_wrong_password_and_records_nothing(audit, admin):
    draft = audit.reports.get()
    response = api_client_for(admin).post(f"/api/reports/{draft.pk}/approve/", {**SIGN, "password": "wrong"},
                                          format="json")
    assert response.status_code == 403
    assert "password is not correct" in response.json()["detail"]
    _nothing_signed(audit)


def test_the_api_names_every_missing_field(audit, admin):
    client = api_client_for(admin)
    url = f"/api/reports/{audit.reports.get().pk}/approve/"
    response = client.post(url, {}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"detail", "password", "meaning", "reason"}
    assert body["detail"] == "missing or invalid: password, meaning, reason"
    response = client.post(url, {**SIGN, "meaning": "looks fine", "reason": "   "}, format="json")
    assert response.status_code == 400 and set(response.json()) == {"detail", "meaning", "reason"}
    assert "reviewed, approved, rejected" in response.json()["meaning"][0]
    _nothing_signed(audit)


def test_the_preparer_and_other_roles_are_refused(org, sets, admin, quality_user, users):
    prepared_by_admin = finished_audit(org, admin, sets, name="prepared by the admin")
    draft = prepared_by_admin.reports.get()
    response = api_client_for(admin).post(f"/api/reports/{draft.pk}/approve/", SIGN, format="json")
    assert response.status_code == 403 and "You prepared this report" in response.json()["detail"]
    response = api_client_for(users[Role.QUALITY]).post(f"/api/reports/{draft.pk}/approve/",
                                                        {**SIGN, "password": PASSWORD}, format="json")
    assert response.status_code == 403 and "Only an organisation admin" in response.json()["detail"]
    assert not Signature.objects.exists() and prepared_by_admin.reports.count() == 1


def test_an_approval_of_a_failing_report_is_signed_printed_and_hashed(audit, admin):
    failed = failed_criteria(audit)
    assert failed, "the fixture's report must fail some criteria"
    draft = audit.reports.get()
    response = api_client_for(admin).post(f"/api/reports/{draft.pk}/approve/", SIGN, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["version"], body["status"], body["approved_by"]) == (2, "approved", admin.username)
    signed = body["signature"]
    assert (signed["signer"], signed["meaning"], signed["reason"], signed["signed_version"]) == (
        admin.username, "approved", SIGN["reason"], 1)
    assert signed["failed_criteria"] == failed and signed["signed_at"].endswith("Z")

    signature = Signature.objects.get()
    approved = audit.reports.get(version=2)
    assert approved.signature == signature and signature.report == draft and signature.signer == admin
    assert signature.signed_pdf_sha256 == draft.pdf_sha256  # the SHA-256 of the version that was signed
    text = _pdf_text(approved)
    utc = signature.signed_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    for printed in (f"approvedby{admin.username}", utc, "".join(SIGN["reason"].split()), "Signedversionv1",
                    draft.pdf_sha256, "Approvedalthough", ",".join(failed)):
        assert printed in text, printed
    twin = json.loads(approved.json_path.read_text())
    signoff = next(s for s in twin["sections"] if s["title"] == "Sign-off")
    facts = {key: value for block in signoff["blocks"] if block["type"] == "facts" for key, value in block["rows"]}
    assert facts["SHA-256 of the signed PDF"] == draft.pdf_sha256 and facts["Reason"] == SIGN["reason"]
    assert facts["Signed at (UTC)"] == utc and facts["Meaning"] == "approved"
    # An approved version is final.
    again = api_client_for(admin).post(f"/api/reports/{approved.pk}/approve/", SIGN, format="json")
    assert again.status_code == 400 and "already approved" in again.json()["detail"]


def test_a_rejection_issues_a_draft_that_prints_it_and_can_still_be_approved(audit, admin, org):
    client = api_client_for(admin)
    draft = audit.reports.get()
    rejected = client.post(f"/api/reports/{draft.pk}/approve/", {**SIGN, "meaning": "rejected",
                                                                  "reason": "Memorisation pairs need a second look."},
                           format="json")
    assert rejected.status_code == 201 and rejected.json()["status"] == "draft"
    v2 = audit.reports.get(version=2)
    assert "rejectedby" in _pdf_text(v2) and "Memorisationpairsneedasecondlook." in _pdf_text(v2)
    second_admin = make_user("second-admin", org, Role.ADMIN)
    approved = api_client_for(second_admin).post(f"/api/reports/{v2.pk}/approve/", SIGN, format="json")
    assert approved.status_code == 201
    v3 = audit.reports.get(version=3)
    text = _pdf_text(v3)
    assert "Signature1" in text and "Signature2" in text and draft.pdf_sha256 in text and v2.pdf_sha256 in text
    assert [s.meaning for s in Signature.objects.all()] == ["rejected", "approved"]
    stale = client.post(f"/api/reports/{draft.pk}/approve/", SIGN, format="json")
    assert stale.status_code == 400 and "only the latest version (v3)" in stale.json()["detail"]


def test_the_web_form_asks_for_password_meaning_and_reason(client, audit, admin, quality_user):
    draft = audit.reports.get()
    url = f"/reports/{draft.pk}/approve/"
    # The preparer sees no sign button and, at the URL, a page that says why.
    client.force_login(quality_user)
    page = client.get(f"/audits/{audit.pk}/").content.decode()
    assert 'id="sign-report"' not in page
    refused = client.get(url)
    assert refused.status_code == 403 and "You cannot sign report v1" in visible_text(refused.content.decode())
    assert "<link rel=\"stylesheet\"" in refused.content.decode()  # the site's page, not a bare 403
    assert client.post(url, SIGN).status_code == 403
    client.force_login(admin)
    page = client.get(f"/audits/{audit.pk}/").content.decode()
    assert 'id="sign-report"' in page
    form = client.get(url)
    assert form.status_code == 200
    text = visible_text(form.content.decode())
    assert "selected criteria failed" in text and draft.pdf_sha256 in text

    missing = client.post(url, {"meaning": "approved"})
    assert missing.status_code == 400
    html = missing.content.decode()
    assert 'id="id_password-error"' in html and 'id="id_reason-error"' in html and 'id="id_meaning-error"' not in html
    wrong = client.post(url, {**SIGN, "password": "not mine"})
    assert wrong.status_code == 403 and "password is not correct" in wrong.content.decode()
    _nothing_signed(audit)

    signed = client.post(url, SIGN)
    assert signed.status_code == 302 and signed["Location"] == f"/audits/{audit.pk}/"
    signature = Signature.objects.get()
    assert (signature.signer, signature.meaning, signature.reason) == (admin, "approved", SIGN["reason"])
    assert signature.signed_pdf_sha256 == draft.pdf_sha256
    page = visible_text(client.get(f"/audits/{audit.pk}/").content.decode())
    assert f"approved by {admin.username}" in page and SIGN["reason"] in page
    assert 'id="sign-report"' not in client.get(f"/audits/{audit.pk}/").content.decode()  # v2 is approved: final


def test_a_signature_cannot_be_changed_or_deleted(audit, admin):
    draft = audit.reports.get()
    api_client_for(admin).post(f"/api/reports/{draft.pk}/approve/", SIGN, format="json")
    signature = Signature.objects.get()
    signature.reason = "something else"
    with pytest.raises(AppendOnlyError):
        signature.save()
    with pytest.raises(AppendOnlyError):
        signature.delete()
    with pytest.raises(AppendOnlyError):
        Signature.objects.filter(pk=signature.pk).update(reason="x")
    with pytest.raises(AppendOnlyError):
        Signature.objects.all().delete()
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:  # below the ORM too
        cursor.execute("UPDATE auditor_signature SET reason = 'x'")
    assert Signature.objects.get().reason == SIGN["reason"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.browser
@pytest.mark.slow
def test_signing_in_chromium_passes_the_page_checks(live_server, org, users, isic_dir, pad_dir, tmp_path, monkeypatch):
    """The sign form, the audit page with its signature and trail, and the refusal page: no serious axe violation,
    no console error; the form works from the keyboard."""
    from axe_playwright_python.sync_playwright import Axe
    from django.db import connections

    from tests.web.browser import BLOCKING_IMPACTS, PageChecker, chromium_page, log_in

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    audit = finished_audit(org, users[Role.QUALITY], audit_sets(org, isic_dir, pad_dir, tmp_path))
    draft = audit.reports.get()
    try:
        with chromium_page() as page:
            checker = PageChecker(page, live_server.url)
            log_in(page, live_server.url, users[Role.ADMIN].username)
            checker.visit(f"/reports/{draft.pk}/approve/", "sign report")
            page.check("#id_meaning_1")  # approved
            page.fill("#id_reason", SIGN["reason"])
            page.fill("#id_password", PASSWORD)
            page.focus("#id_password")
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert page.url == f"{live_server.url}/audits/{audit.pk}/"
            checker.visit(f"/audits/{audit.pk}/", "audit with signature and trail")
            page.click("header .logout button")
            log_in(page, live_server.url, users[Role.QUALITY].username)
            response = page.goto(f"{live_server.url}/reports/{audit.reports.get(version=2).pk}/approve/")
            assert response.status == 403 and "You prepared this report" in page.inner_text("main")
            blocking = [v["id"] for v in Axe().run(page).response["violations"] if v.get("impact") in BLOCKING_IMPACTS]
            assert not blocking, blocking
            assert not checker.problems, "\n".join(checker.problems)
    finally:
        connections.close_all()
    assert Signature.objects.get().meaning == "approved"
