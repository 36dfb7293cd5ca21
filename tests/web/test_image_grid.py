"""A set's images as a paginated thumbnail grid, filtered by label (diagnosis, Fitzpatrick, acquisition) and by a
detector's P(synthetic)."""
from __future__ import annotations

import pytest

from auditor.models import DetectorRun
from auditor.web.image_views import IMAGES_PER_PAGE
from tests.web.pages import attribute_values, visible_text
from tests.web.worlds import real_set, score_images

pytestmark = pytest.mark.django_db


@pytest.fixture
def pad(org, pad_dir, tmp_path):
    return real_set(org, "pad", "generated", pad_dir, tmp_path, IMAGES_PER_PAGE + 12, step=3)


def _cells(html: str) -> list[int]:
    return [int(src.split("/")[2]) for src in attribute_values(html, "img", "src") if "/thumbnail/" in src]


def test_the_grid_pages_through_every_image_once(client, quality_user, pad):
    client.force_login(quality_user)
    first = client.get(f"/sets/{pad.pk}/images/").content.decode()
    second = client.get(f"/sets/{pad.pk}/images/?page=2").content.decode()
    ids = list(pad.images.order_by("id").values_list("id", flat=True))
    assert _cells(first) == ids[:IMAGES_PER_PAGE] and _cells(second) == ids[IMAGES_PER_PAGE:]
    assert "page 1 of 2" in visible_text(first) and 'rel="next"' in first
    for image in pad.images.all()[:3]:
        assert f'alt="Thumbnail of {image.original_name}"' in first
    detail = client.get(f"/sets/{pad.pk}/").content.decode()  # the set's page shows the first dozen and links here
    assert _cells(detail) == ids[:12] and f"/sets/{pad.pk}/images/" in detail


def test_filters_by_label(client, quality_user, pad):
    client.force_login(quality_user)
    diagnosis = pad.images.values_list("diagnosis", flat=True).first()
    fitzpatrick = pad.images.exclude(fitzpatrick=None).values_list("fitzpatrick", flat=True).first()
    for query, expected in [
        (f"diagnosis={diagnosis}", pad.images.filter(diagnosis=diagnosis)),
        (f"fitzpatrick={fitzpatrick}", pad.images.filter(fitzpatrick=fitzpatrick)),
        ("fitzpatrick=none", pad.images.filter(fitzpatrick=None)),
        (f"acquisition=clinical&diagnosis={diagnosis}", pad.images.filter(acquisition="clinical", diagnosis=diagnosis)),
    ]:
        html = client.get(f"/sets/{pad.pk}/images/?{query}").content.decode()
        assert sorted(_cells(html)) == sorted(expected.values_list("id", flat=True))[:IMAGES_PER_PAGE], query
    assert 0 < pad.images.filter(fitzpatrick=None).count() < pad.images.count()  # both branches are exercised
    options = client.get(f"/sets/{pad.pk}/images/").content.decode()
    assert f">{diagnosis} ({pad.images.filter(diagnosis=diagnosis).count()})</option>" in options


def test_filters_and_sorts_by_detector_score(client, quality_user, org, pad):
    older = DetectorRun.objects.create(organisation=org, reference_set=pad, status="succeeded")
    score_images(pad, older)
    latest = DetectorRun.objects.create(organisation=org, reference_set=pad, status="succeeded")
    scores = score_images(pad, latest)
    client.force_login(quality_user)
    page = client.get(f"/sets/{pad.pk}/images/").content.decode()
    assert f'<option value="{latest.pk}" selected>' in page  # the latest scoring is the default
    assert f"P(synthetic) {scores[pad.images.order_by('id').first().pk]:.3f}" in visible_text(page)

    html = client.get(f"/sets/{pad.pk}/images/?detector={latest.pk}&p_min=0.25&p_max=0.5&order=score-desc").content.decode()
    expected = sorted((pk for pk, p in scores.items() if 0.25 <= p <= 0.5), key=lambda pk: -scores[pk])
    assert _cells(html) == expected and len(expected) > 3

    plain = client.get(f"/sets/{pad.pk}/images/?detector=").content.decode()  # "none": no scores, upload order
    assert "P(synthetic) 0" not in visible_text(plain)


def test_invalid_filters_are_explained(client, quality_user, pad):
    client.force_login(quality_user)
    response = client.get(f"/sets/{pad.pk}/images/?p_min=2")
    assert response.status_code == 400
    assert "Ensure this value is less than or equal to 1" in response.content.decode()
    assert _cells(response.content.decode()) == []  # an invalid filter shows nothing rather than everything
    no_detector = client.get(f"/sets/{pad.pk}/images/?order=score-desc")
    assert no_detector.status_code == 400 and "Choose the detector" in no_detector.content.decode()
    assert client.get(f"/sets/{pad.pk}/images/?acquisition=none").status_code == 400  # every image has one: no such choice
