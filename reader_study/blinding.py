"""Blinded images: every case is served with the same format, size, byte length and no metadata.

Real images usually arrive as large JPEGs and generated ones as small PNGs; served as stored, the format, the
pixel size, the EXIF block or just the file size would tell a reader which is which. So every case is rendered
once, the same way (RENDERING), cached by content, and every response of a study is padded to one length.
Rendering happens when the study opens, never while a reader waits, so the first response of a case does not
take longer for one kind of source image than for another.
"""
from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

from django.conf import settings
from django.db import transaction
from PIL import Image as PILImage

from metrics.atomic_files import write_file_atomically
from PIL import ImageOps

from .models import Case, Study

logger = logging.getLogger(__name__)

RENDER_VERSION = "blind-v1"
JPEG_QUALITY = 90
RENDERING = (
    f"{RENDER_VERSION}: EXIF orientation applied, 8-bit RGB, centre crop to a square, Lanczos resize to the study's "
    f"size, baseline JPEG quality {JPEG_QUALITY} with 4:2:0 chroma subsampling, no metadata, zero-padded to the "
    "study's longest rendering"
)
CONTENT_TYPE = "image/jpeg"
CACHE_FOLDER = "reader-study-cache"


def derivative_key(source_sha256: str, size: int) -> str:
    """Content key of a rendering: source bytes' hash × rendering recipe × size (never a name or an id)."""
    return hashlib.sha256(f"{RENDER_VERSION}:{size}:{source_sha256}".encode()).hexdigest()


def derivative_path(key: str) -> Path:
    return Path(settings.MEDIA_ROOT) / CACHE_FOLDER / key[:2] / f"{key}.jpg"


def render_blinded(source: Path | str, size: int) -> bytes:
    """Decode → orient → RGB → square centre crop → Lanczos to ``size`` → JPEG, with no metadata at all."""
    with PILImage.open(source) as image:
        image = ImageOps.exif_transpose(image)
        rgb = image.convert("RGB")
    fitted = ImageOps.fit(rgb, (size, size), method=PILImage.Resampling.LANCZOS, centering=(0.5, 0.5))
    # A fresh image from raw pixels carries no info dict (EXIF, ICC, DPI, text chunks) into the encoder.
    clean = PILImage.frombytes("RGB", fitted.size, fitted.tobytes())
    buffer = io.BytesIO()
    clean.save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=2, optimize=False, progressive=False)
    return buffer.getvalue()


def ensure_derivative(case: Case, size: int) -> bytes:
    """The case's rendering, from the content cache or rendered now (and cached)."""
    key = derivative_key(case.image.sha256, size)
    path = derivative_path(key)
    if path.exists():
        return path.read_bytes()
    data = render_blinded(case.image.path, size)
    # A rendering can be redone, so no fsync; concurrent renderers write identical bytes (the last rename wins).
    write_file_atomically(path, data, durable=False)
    return data


def prepare_study_images(study: Study) -> int:
    """Render every case of the study (idempotent) and fix the study's padded response length.

    Returns the padded length. Called when a study opens; safe to call again (e.g. after the cache was wiped).
    """
    longest = 0
    for case in study.cases.select_related("image"):
        data = ensure_derivative(case, study.image_size)
        key = derivative_key(case.image.sha256, study.image_size)
        if case.derivative_key != key or case.derivative_bytes != len(data):
            Case.objects.filter(pk=case.pk).update(derivative_key=key, derivative_bytes=len(data))
        longest = max(longest, len(data))
    with transaction.atomic():
        Study.objects.filter(pk=study.pk).update(padded_image_bytes=longest)
    study.padded_image_bytes = longest
    return longest


def blinded_image_bytes(case: Case, study: Study) -> bytes:
    """The bytes a reader receives: the rendering followed by zeros up to the study's padded length.

    JPEG decoders stop at the end-of-image marker, so the padding is invisible and carries no information.
    """
    path = derivative_path(case.derivative_key) if case.derivative_key else None
    if path is not None and path.exists():
        data = path.read_bytes()
    else:
        logger.warning("reader-study cache miss for case %s: rendering while the reader waits", case.pk)
        data = ensure_derivative(case, study.image_size)
    if len(data) > study.padded_image_bytes:
        logger.warning("case %s renders to %d bytes, more than the study's padded %d", case.pk, len(data),
                       study.padded_image_bytes)
        return data
    return data + bytes(study.padded_image_bytes - len(data))
