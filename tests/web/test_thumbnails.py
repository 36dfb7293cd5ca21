"""Thumbnails: made once per (content hash, size), kept in media storage, served with long private caching and an
ETag, only to the roles that may see image sets."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image as PILImage

from auditor.models import ImageSet
from auditor.web import thumbnails
from tests.auditor.conftest import make_user
from tests.web.worlds import real_set

pytestmark = pytest.mark.django_db


@pytest.fixture
def isic(org, isic_dir, tmp_path):
    return real_set(org, "isic", "reference", isic_dir, tmp_path, 3)


def _body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_a_thumbnail_is_a_small_clean_jpeg_with_long_private_caching(client, quality_user, isic):
    image = isic.images.order_by("id").first()
    client.force_login(quality_user)
    response = client.get(f"/images/{image.pk}/thumbnail/320/")
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert response["Cache-Control"] == "private, max-age=31536000, immutable"
    with PILImage.open(io.BytesIO(_body(response))) as picture:
        assert picture.format == "JPEG" and max(picture.size) == 320  # 512×384 → 320×240
        assert picture.size == (320, 240) and not picture.getexif() and "icc_profile" not in picture.info
    again = client.get(f"/images/{image.pk}/thumbnail/320/", HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304 and not again.content and again["ETag"] == response["ETag"]
    assert client.get(f"/images/{image.pk}/thumbnail/641/").status_code == 404  # only the page's sizes exist


def test_made_once_per_content_hash_and_size(client, quality_user, org, isic, tmp_path, settings, monkeypatch):
    copy = ImageSet.objects.create(organisation=org, name="same files", kind="generated")
    source = tmp_path / "again"
    source.mkdir()
    for image in isic.images.all():
        (source / image.original_name).write_bytes(Path(image.path).read_bytes())
    from tests.auditor.ingest_helpers import ingest_paths

    ingest_paths(copy, [source])
    assert copy.images.count() == 3
    client.force_login(quality_user)
    made = []
    real = thumbnails.write_file_atomically
    monkeypatch.setattr(thumbnails, "write_file_atomically", lambda path, data, **kw: made.append(path) or real(path, data, **kw))
    for image in list(isic.images.all()) + list(copy.images.all()):
        for _ in range(2):
            assert client.get(f"/images/{image.pk}/thumbnail/320/").status_code == 200
    assert len(made) == 3  # six image rows, three contents, one thumbnail each
    on_disk = sorted(p.name for p in (Path(settings.MEDIA_ROOT) / "thumbnails" / "320").rglob("*.jpg"))
    assert on_disk == sorted(f"{sha}.jpg" for sha in isic.images.values_list("sha256", flat=True))
    image = isic.images.first()
    assert client.get(f"/images/{image.pk}/thumbnail/640/").status_code == 200 and len(made) == 4


def test_an_empty_file_left_by_a_crash_is_made_again(client, quality_user, isic):
    image = isic.images.first()
    path = thumbnails.thumbnail_path(image.sha256, 320)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    client.force_login(quality_user)
    assert len(_body(client.get(f"/images/{image.pk}/thumbnail/320/"))) > 1000 and path.stat().st_size > 1000


def test_only_roles_that_see_image_sets_get_thumbnails(client, org, other_org, isic, users):
    image = isic.images.first()
    url = f"/images/{image.pk}/thumbnail/320/"
    assert client.get(url).status_code == 302  # anonymous: to the login page
    for role, expected in [("quality", 200), ("developer", 200), ("admin", 200), ("reader", 403)]:
        client.force_login(users[role])
        response = client.get(url)
        assert response.status_code == expected, role
        if expected == 403:
            assert "ETag" not in response and b"JFIF" not in response.content
    client.force_login(make_user("quality-b", other_org, "quality"))
    assert client.get(url).status_code == 404
