"""Blinding: a reader rating a study's cases can reach none of the new image and audit pages — not the grid, not an
image's page, not a thumbnail of a case they are rating, not a chart or picture of a report — and nothing they are
shown links there."""
from __future__ import annotations

import re

import pytest

from auditor.models import Role
from reader_study.models import ReaderProfile
from reader_study.services import ArmSpec, StudyDesign, create_study, invite_readers, open_study
from tests.web.pages import attribute_values
from tests.web.worlds import audit_sets, finished_audit

pytestmark = pytest.mark.django_db
FORBIDDEN_PREFIXES = ("/sets/", "/images/", "/audits/", "/reports/", "/detectors/", "/generators/", "/api/images/")


def test_a_reader_reaches_no_image_set_image_thumbnail_or_audit(client, org, users, quality_user, isic_dir, pad_dir, tmp_path):
    reader = users[Role.READER]
    ReaderProfile.objects.create(user=reader, specialty="dermatology", years_experience=7, board_certified=True)
    sets = audit_sets(org, isic_dir, pad_dir, tmp_path, n=6)
    audit = finished_audit(org, quality_user, sets)
    report = audit.reports.get()
    study = create_study(org, StudyDesign(name="blinded", arms=(ArmSpec(sets["generated"].pk, 3), ArmSpec(sets["reference"].pk, 3)),
                                          image_size=128, seed=1), created_by=quality_user)
    invite_readers(study, [reader])
    open_study(study)

    client.force_login(reader)
    urls = [f"/audits/{audit.pk}/", f"/audits/compare/?a={audit.pk}&b={audit.pk}", "/audits/compare/",
            f"/reports/{report.pk}/charts/0/", f"/reports/{report.pk}/pictures/0/"]
    for image_set in sets.values():
        urls += [f"/sets/{image_set.pk}/", f"/sets/{image_set.pk}/images/"]
        for image in image_set.images.all():  # the study's cases among them
            urls += [f"/images/{image.pk}/", f"/images/{image.pk}/thumbnail/320/", f"/images/{image.pk}/thumbnail/640/"]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 403, url
        assert "ETag" not in response and not response.get("Content-Type", "").startswith("image/"), url

    names = [name for image_set in sets.values() for name in image_set.images.values_list("original_name", flat=True)]
    hashes = [sha[:12] for image_set in sets.values() for sha in image_set.images.values_list("sha256", flat=True)]
    for page in ("/studies/", "/studies/profile/", f"/studies/{study.pk}/read/"):
        response = client.get(page)
        assert response.status_code == 200, page
        html = response.content.decode()
        links = attribute_values(html, "a", "href") + attribute_values(html, "img", "src") + attribute_values(html, "form", "action")
        assert not [link for link in links if link.startswith(FORBIDDEN_PREFIXES)], page
        assert not any(name in html for name in names) and not any(sha in html for sha in hashes), page
        assert not re.search(r"thumbnail|/pictures/|/charts/", html), page
