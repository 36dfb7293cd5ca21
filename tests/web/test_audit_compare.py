"""Two audits of one organisation side by side, criterion by criterion: a re-run shows identical values, another
generator shows its differences; audits of different organisations are never compared."""
from __future__ import annotations

import pytest

from auditor.models import Audit, Membership, Organisation, Role
from auditor.reporting import format_number
from auditor.reporting.criteria import CRITERIA
from tests.auditor.conftest import make_user
from tests.web.pages import table, visible_text
from tests.web.worlds import audit_sets, finished_audit

pytestmark = pytest.mark.django_db


@pytest.fixture
def sets(org, isic_dir, pad_dir, tmp_path):
    return audit_sets(org, isic_dir, pad_dir, tmp_path)


@pytest.fixture
def first(org, quality_user, sets) -> Audit:
    return finished_audit(org, quality_user, sets, "generator A")


def _rows(client, a: Audit, b: Audit, status: int = 200) -> tuple[str, list[list[str]]]:
    response = client.get(f"/audits/compare/?a={a.pk}&b={b.pk}")
    assert response.status_code == status
    html = response.content.decode()
    return html, (table(html, id="comparison")[1:] if status == 200 else [])


def test_a_rerun_shows_identical_values(client, quality_user, org, sets, first):
    rerun = finished_audit(org, quality_user, sets, "generator A, re-run",
                           results={r.stage: r.data for r in first.results.exclude(stage="report")})
    client.force_login(quality_user)
    html, rows = _rows(client, first, rerun)
    assert len(rows) == first.results.get(stage="report").data["criteria"].__len__()
    for row in rows:
        criterion, a_status, a_value, a_ci, b_status, b_value, b_ci, difference, same = row
        assert (a_status, a_value, a_ci) == (b_status, b_value, b_ci)
        assert difference in ("0.000", "n/a") and same == "identical"
    n_criteria = len(first.results.get(stage="report").data["criteria"])
    assert visible_text(html).count(f"All {n_criteria} criteria are identical.") == 1


def test_another_generator_shows_each_difference(client, quality_user, org, sets, first):
    second = finished_audit(org, quality_user, sets, "generator B", fd_scale=1.5)
    client.force_login(quality_user)
    _, rows = _rows(client, first, second)
    by_name = {row[0]: row for row in rows}
    gap = next(row for title, row in by_name.items() if title.startswith(CRITERIA["fd_upper_ci_over_floor"].title))
    criteria_a = {c["name"]: c for c in first.results.get(stage="report").data["criteria"]}
    criteria_b = {c["name"]: c for c in second.results.get(stage="report").data["criteria"]}
    a, b = criteria_a["fd_upper_ci_over_floor"], criteria_b["fd_upper_ci_over_floor"]
    assert gap[2] == a["value_text"] and gap[5] == b["value_text"]
    assert gap[7] == "+" + format_number(b["value"] - a["value"]) and gap[8] == "differs"
    kid = next(row for title, row in by_name.items() if title.startswith("Kernel distance"))
    assert kid[7] == "0.000" and kid[8] == "identical"  # only the FD changed


def test_audits_of_another_organisation_are_not_found_and_never_mixed(client, quality_user, org, sets, first, isic_dir, pad_dir, tmp_path):
    other = Organisation.objects.create(name="Clinic B")
    stranger = make_user("quality-b", other, Role.QUALITY)
    theirs = finished_audit(other, stranger, audit_sets(other, isic_dir, pad_dir, tmp_path / "b"), "their audit")
    client.force_login(quality_user)
    assert client.get(f"/audits/compare/?a={first.pk}&b={theirs.pk}").status_code == 404
    assert client.get(f"/audits/compare/?a={theirs.pk}&b={first.pk}").status_code == 404

    Membership.objects.create(user=quality_user, organisation=other, role=Role.QUALITY)  # may now read both
    html, _ = _rows(client, first, theirs, status=400)
    assert "Choose two audits of the same organisation." in html and 'id="comparison"' not in html


def test_the_form_offers_the_users_audits(client, quality_user, first):
    client.force_login(quality_user)
    response = client.get("/audits/compare/")
    assert response.status_code == 200
    assert f'<option value="{first.pk}">#{first.pk} generator A' in response.content.decode()
    assert client.get("/audits/compare/?a=x&b=1").status_code == 400
