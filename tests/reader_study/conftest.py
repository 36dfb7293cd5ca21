from __future__ import annotations

import pytest

from auditor.models import Organisation, Role

from .helpers import build_sets, make_reader, make_study, make_user


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def org(db) -> Organisation:
    return Organisation.objects.create(name="Clinic A")


@pytest.fixture
def quality_user(org):
    return make_user("quality-a", org, Role.QUALITY)


@pytest.fixture
def image_sets(org, isic_dir, tmp_path):
    return build_sets(org, isic_dir, tmp_path)


@pytest.fixture
def study(org, image_sets, quality_user):
    """A draft study of 4 real + 4 synthetic cases (call, confidence 1–5, quality), images at 128 px."""
    real, synthetic = image_sets
    return make_study(org, real, synthetic, created_by=quality_user)


@pytest.fixture
def reader(org):
    return make_reader("reader-a", org)
