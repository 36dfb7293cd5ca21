"""Fixtures for the service tests: organisations, one user per role, API clients, image bytes."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from PIL import Image as PILImage
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from auditor.models import ImageSet, Membership, Organisation, Role

ROLES = [Role.QUALITY, Role.READER, Role.DEVELOPER, Role.ADMIN]


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def make_user(username: str, organisation: Organisation, role: str):
    user = get_user_model().objects.create_user(username=username, password="correct-horse-battery")
    Membership.objects.create(user=user, organisation=organisation, role=role)
    return user


@pytest.fixture
def org(db) -> Organisation:
    return Organisation.objects.create(name="Clinic A")


@pytest.fixture
def other_org(db) -> Organisation:
    return Organisation.objects.create(name="Clinic B")


@pytest.fixture
def users(org) -> dict[str, object]:
    return {role: make_user(f"{role}-a", org, role) for role in ROLES}


@pytest.fixture
def quality_user(users):
    return users[Role.QUALITY]


def api_client_for(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def quality_client(quality_user) -> APIClient:
    return api_client_for(quality_user)


@pytest.fixture
def image_set(org, quality_user) -> ImageSet:
    return ImageSet.objects.create(organisation=org, name="batch-1", kind=ImageSet.Kind.GENERATED, created_by=quality_user)


def image_bytes(fmt: str = "PNG", mode: str = "RGB", size=(32, 24), seed: int = 0, **save_kwargs) -> bytes:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1, "CMYK": 4, "LA": 2}[mode]
    array = rng.integers(0, 256, size=(size[1], size[0], channels), dtype=np.uint8)
    image = PILImage.fromarray(array.squeeze(-1) if channels == 1 else array, mode=mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save_kwargs)
    return buffer.getvalue()


def zip_bytes(entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()
