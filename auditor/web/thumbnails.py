"""Thumbnails of stored images: made once per (content SHA-256, size) with Pillow, kept under MEDIA_ROOT.

Why Pillow behind this one function rather than sorl-thumbnail or easy-thumbnails: both key their cache by the
source's storage name and options and keep an index of made thumbnails in their own database tables (a key-value
table, or Source/Thumbnail rows with migrations), and both hand out URLs under MEDIA_URL, which a web server
serves to anyone. Our blobs are already content-addressed, so the content hash is the whole cache key, the file's
existence is the whole index, and every thumbnail must go through an authorised view (readers must never see one).
What is left of either library is `Image.thumbnail` itself, which Pillow (already pinned) provides.
"""
from __future__ import annotations

import io
import re
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.urls import reverse
from PIL import Image as PILImage

from auditor.models import Image
from metrics.atomic_files import write_file_atomically

# Longest side in pixels: grid cells (twice their CSS size, for high-density screens) and the image's own page.
GRID_SIZE = 320
PAGE_SIZE = 640
SIZES = (GRID_SIZE, PAGE_SIZE)
JPEG_QUALITY = 85
_SHA256 = re.compile(r"[0-9a-f]{64}")
ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV", 5: "V", 6: "VI"}


def thumbnail_path(sha256: str, size: int) -> Path:
    if not _SHA256.fullmatch(sha256) or size not in SIZES:
        raise ValueError(f"no thumbnail for {sha256!r} at {size} px")
    return Path(settings.MEDIA_ROOT) / "thumbnails" / str(size) / sha256[:2] / f"{sha256}.jpg"


def display_size(width: int, height: int, box: int) -> tuple[int, int]:
    """CSS pixels of a picture fitted into a `box`-sized square (so pages reserve its space before it loads)."""
    scale = box / max(width, height, 1)
    return max(1, round(width * scale)), max(1, round(height * scale))


def thumbnail_for(image: Image, size: int) -> Path:
    """The JPEG thumbnail of `image` at `size`, made on first use. Concurrent makers write the same bytes; each
    writes a temporary file and renames it, so a reader never sees a partial file."""
    path = thumbnail_path(image.sha256, size)
    try:
        if path.stat().st_size > 0:  # written without fsync (a cache): an empty file after a crash is remade
            return path
    except FileNotFoundError:
        pass
    with default_storage.open(image.file, "rb") as handle, PILImage.open(handle) as picture:
        picture.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, several times faster
        picture = picture.convert("RGB")
        picture.thumbnail((size, size), PILImage.Resampling.LANCZOS, reducing_gap=3.0)
        buffer = io.BytesIO()
        picture.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)  # no EXIF, no ICC: pixels only
    return write_file_atomically(path, buffer.getvalue(), durable=False)


def _url_maker(name: str, *after_pk):
    """A function pk -> URL for a URL name, reversed once (a grid page has 96 links; reverse() each costs ~0.1 ms)."""
    marker = 987654321
    head, tail = reverse(name, args=[marker, *after_pk]).split(str(marker))
    return lambda pk: f"{head}{pk}{tail}"


def grid_cells(images, score_detector: int | None = None) -> list[dict]:
    """What a grid cell shows, as ready strings: the thumbnail (its size reserved), the name, the labels and, when
    known, P(synthetic)."""
    detail_url, thumbnail_url = _url_maker("web:image-detail"), _url_maker("web:image-thumbnail", GRID_SIZE)
    cells = []
    for image in images:
        width, height = display_size(image.width, image.height, GRID_SIZE // 2)
        labels = [image.diagnosis or "no diagnosis", f"Fitzpatrick {ROMAN[image.fitzpatrick]}" if image.fitzpatrick else "no phototype label",
                  image.acquisition or "acquisition unknown"]
        score = getattr(image, "p_synthetic", None) if score_detector else None
        cells.append({"url": detail_url(image.pk), "thumbnail": thumbnail_url(image.pk), "name": image.original_name,
                      "width": width, "height": height, "labels": " · ".join(labels),
                      "score": None if score is None else f"{score:.3f}"})
    return cells
