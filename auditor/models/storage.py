"""Evidence files are referred to by storage name, never by absolute path.

A storage name is relative to MEDIA_ROOT ("audits/1/memorization/pair_00.png", "reports/audit-1/report-v1-….pdf")
and is resolved through Django's default storage when a file is read, so a copied `var/` (a restored backup, a new
host) still finds every picture. Rows, stored stage results and the JSON twin all hold names.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.storage import default_storage


def media_name(path: str | Path) -> str:
    """The storage name of a file written under MEDIA_ROOT (stages write with Pillow/torch into local folders)."""
    path = Path(path)
    if not path.is_absolute():
        return PurePosixPath(path).as_posix()
    root = Path(settings.MEDIA_ROOT).resolve()
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        raise ValueError(f"{path} is not under MEDIA_ROOT ({root}); evidence must be stored in the media "
                         "storage") from None


def media_path(name: str) -> Path:
    """The local file of a storage name. Raises SuspiciousFileOperation for a name that leads out of MEDIA_ROOT
    (an absolute path outside it, "../"); an absolute path inside MEDIA_ROOT (written before names) still resolves."""
    return Path(default_storage.path(name))


def media_exists(name: str) -> bool:
    try:
        return bool(name) and default_storage.exists(name)
    except SuspiciousFileOperation:
        return False
