"""Blinded images: every case of a study is served as the same number of bytes, and those bytes are its pixels.

Real images usually arrive as large JPEGs and generated ones as small PNGs; served as stored, the format, the
pixel size, the EXIF block or just the file size would tell a reader which is which. Padding a compressed rendering
to one length is not enough: the padding strips off, and what remains has a size that follows the content (a user
separated a 40-case study by JPEG payload size alone). So every case is rendered once, the same way (RENDERING),
and written as an uncompressed PNG — unfiltered rows in stored deflate blocks — whose bytes are a fixed function of
the pixels and whose length depends on the study's image size alone. Nothing is padded; there is nothing to strip.
Re-compressing the body measures the pixels, which the reader sees anyway, and nothing else.

Rendering happens when the study opens, never while a reader waits, so the first response of a case does not take
longer for one kind of source image than for another. Renderings are cached by content.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import struct
import zlib
from pathlib import Path

from django.conf import settings
from PIL import Image as PILImage
from PIL import ImageOps

from metrics.atomic_files import write_file_atomically

from .models import Case, Study

logger = logging.getLogger(__name__)

RENDER_VERSION = "blind-v2"
RENDERING = (
    f"{RENDER_VERSION}: EXIF orientation applied, 8-bit RGB, centre crop to a square, Lanczos resize to the study's "
    "size, uncompressed PNG (unfiltered rows in stored deflate blocks, no other chunks: every case of a study has "
    "the same byte length, no padding), no metadata"
)
CONTENT_TYPE = "image/png"
CACHE_FOLDER = "reader-study-cache"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class BlindingError(RuntimeError):
    """A rendering whose length differs from the study's: a bug that would let the size tell cases apart."""


def derivative_key(source_sha256: str, size: int) -> str:
    """Content key of a rendering: source bytes' hash × rendering recipe × size (never a name or an id)."""
    return hashlib.sha256(f"{RENDER_VERSION}:{size}:{source_sha256}".encode()).hexdigest()


def derivative_path(key: str) -> Path:
    return Path(settings.MEDIA_ROOT) / CACHE_FOLDER / key[:2] / f"{key}.png"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_pixels(image: PILImage.Image) -> bytes:
    """An RGB image as a PNG that holds its pixels and nothing else: IHDR, one IDAT, IEND.

    Every row uses filter 0 (none) and the deflate stream uses stored blocks (level 0), so the length depends on
    the width and height alone and the bytes on the pixels alone (the checksums included). Written here rather
    than by Pillow, whose encoder picks a filter per row and may lay out chunks differently between versions.
    """
    width, height = image.size
    pixels = image.convert("RGB").tobytes()
    stride = 3 * width
    rows = b"".join(b"\0" + pixels[y * stride:(y + 1) * stride] for y in range(height))
    # 8 bits per sample, truecolour, deflate, filter method 0, no interlace
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (PNG_SIGNATURE + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(rows, 0))
            + _png_chunk(b"IEND", b""))


@functools.lru_cache(maxsize=16)
def encoded_length(size: int) -> int:
    """The byte length of every rendering at ``size`` (what a black square encodes to)."""
    return len(encode_pixels(PILImage.new("RGB", (size, size))))


def render_blinded(source: Path | str, size: int) -> bytes:
    """Decode → orient → RGB → square centre crop → Lanczos to ``size`` → uncompressed PNG of the pixels alone."""
    with PILImage.open(source) as image:
        image = ImageOps.exif_transpose(image)
        rgb = image.convert("RGB")
    fitted = ImageOps.fit(rgb, (size, size), method=PILImage.Resampling.LANCZOS, centering=(0.5, 0.5))
    return encode_pixels(fitted)  # only the pixel bytes reach the file: no EXIF, ICC, DPI or text chunks


def ensure_derivative(case: Case, size: int) -> bytes:
    """The case's rendering, from the content cache or rendered now (and cached)."""
    path = derivative_path(derivative_key(case.image.sha256, size))
    if path.exists():
        data = path.read_bytes()
        if len(data) == encoded_length(size):
            return data
        logger.warning("cached rendering %s has %d bytes, not %d: rendering again", path.name, len(data),
                       encoded_length(size))
    data = render_blinded(case.image.path, size)
    # A rendering can be redone, so no fsync; concurrent renderers write identical bytes (the last rename wins).
    write_file_atomically(path, data, durable=False)
    return data


def _check_length(case: Case, data: bytes, size: int) -> bytes:
    if len(data) != encoded_length(size):
        logger.error("case %s renders to %d bytes, not the %d of every %d-px case", case.pk, len(data),
                     encoded_length(size), size)
        raise BlindingError(f"case {case.pk} renders to {len(data)} bytes, not {encoded_length(size)}")
    return data


def prepare_study_images(study: Study) -> int:
    """Render every case of the study (idempotent) and record the one length every image response has.

    Returns that length. Called when a study opens; safe to call again (e.g. after the cache was wiped).
    Raises BlindingError, and so keeps the study from opening, if any case renders to another length.
    """
    for case in study.cases.select_related("image"):
        data = _check_length(case, ensure_derivative(case, study.image_size), study.image_size)
        key = derivative_key(case.image.sha256, study.image_size)
        if case.derivative_key != key or case.derivative_bytes != len(data):
            Case.objects.filter(pk=case.pk).update(derivative_key=key, derivative_bytes=len(data))
    length = encoded_length(study.image_size)
    Study.objects.filter(pk=study.pk).update(padded_image_bytes=length)
    study.padded_image_bytes = length
    return length


def blinded_image_bytes(case: Case, study: Study) -> bytes:
    """The bytes a reader receives: the case's cached rendering as it is, the same length for every case."""
    path = derivative_path(derivative_key(case.image_sha256, study.image_size))
    data = path.read_bytes() if path.exists() else b""
    if len(data) != encoded_length(study.image_size):
        logger.warning("reader-study cache miss for case %s: rendering while the reader waits", case.pk)
        data = _check_length(case, ensure_derivative(case, study.image_size), study.image_size)
    return data
