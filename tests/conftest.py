"""Shared fixtures. The real dermatology sets live in ../shared/data and are used by path, never copied."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("DERMAUDIT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def _require(path: Path) -> Path:
    # CI must fail, not skip, when the shared data is missing.
    if not path.exists():
        raise FileNotFoundError(f"shared test data not found at {path} (set DERMAUDIT_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _require(SHARED_DATA)


@pytest.fixture(scope="session")
def isic_dir(shared_data: Path) -> Path:
    return _require(shared_data / "isic-uda1")


@pytest.fixture(scope="session")
def pad_dir(shared_data: Path) -> Path:
    return _require(shared_data / "pad-ufes-20")


@pytest.fixture(scope="session")
def mrmc_csv(shared_data: Path) -> Path:
    return _require(shared_data / "mrmc" / "imrmc-example.csv")


@pytest.fixture(autouse=True)
def _fast_password_hashing(request):
    # PBKDF2 at production strength costs ~0.7 s per user on this CPU; tests do not need it.
    if "django_db_setup" in request.fixturenames or "db" in request.fixturenames or "transactional_db" in request.fixturenames:
        settings = request.getfixturevalue("settings")
        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
