"""Unusual but valid images are normalised to 8-bit RGB, each with a recorded note."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image as PILImage

from auditor.ingestion.rules import normalise_image

LIMITS = {"max_pixels": 10_000_000, "max_bytes": 10_000_000}


def _encode(image: PILImage.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _decoded(result) -> np.ndarray:
    image = PILImage.open(io.BytesIO(result.stored_bytes))
    assert image.mode == "RGB"
    return np.asarray(image)


def test_plain_rgb_jpeg_keeps_its_original_bytes():
    data = _encode(PILImage.new("RGB", (40, 30), (10, 200, 30)), "JPEG", quality=95)
    result = normalise_image(data, **LIMITS)
    assert result.stored_bytes == data and result.stored_suffix == ".jpg"
    assert result.sha256 == result.source_sha256 and result.notes == []
    assert (result.width, result.height, result.original_format, result.original_mode) == (40, 30, "JPEG", "RGB")


def test_sixteen_bit_grayscale_is_scaled_to_eight_bit():
    array = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    data = _encode(PILImage.fromarray(array))
    result = normalise_image(data, **LIMITS)
    assert result.original_mode.startswith("I;16")
    assert _decoded(result)[0, :, 0].tolist() == [0, 100, 255]
    assert result.notes == ["16-bit grayscale scaled to 8-bit and expanded to RGB"]


def test_sixteen_bit_rgb_png_is_noted():
    # Pillow cannot write 48-bit PNGs; build one with a minimal encoder.
    import struct
    import zlib

    height, width = 2, 3
    raw = b"".join(b"\x00" + np.full((width, 3), 0xABCD, dtype=">u2").tobytes() for _ in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    result = normalise_image(data, **LIMITS)
    assert result.notes == ["16-bit per channel reduced to 8-bit"]
    assert _decoded(result)[0, 0].tolist() == [0xAB, 0xAB, 0xAB]


def test_cmyk_palette_grayscale_and_alpha_become_rgb_with_notes():
    cmyk = normalise_image(_encode(PILImage.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG"), **LIMITS)
    assert cmyk.notes == ["CMYK converted to RGB (Pillow's conversion, no ICC profile applied)"]
    assert cmyk.original_mode == "CMYK"

    palette = PILImage.new("RGB", (8, 8), (255, 0, 0)).convert("P", palette=PILImage.Palette.ADAPTIVE, colors=4)
    result = normalise_image(_encode(palette), **LIMITS)
    assert result.notes == ["palette image expanded to RGB"] and _decoded(result)[0, 0].tolist() == [255, 0, 0]

    gray = normalise_image(_encode(PILImage.new("L", (8, 8), 77)), **LIMITS)
    assert gray.notes == ["grayscale (L) expanded to RGB"] and _decoded(gray)[0, 0].tolist() == [77, 77, 77]

    rgba = PILImage.new("RGBA", (8, 8), (0, 0, 0, 0))
    rgba.putpixel((0, 0), (0, 0, 255, 255))
    result = normalise_image(_encode(rgba), **LIMITS)
    assert result.notes == ["alpha channel (RGBA) composited on white"]
    assert _decoded(result)[0, 0].tolist() == [0, 0, 255] and _decoded(result)[1, 1].tolist() == [255, 255, 255]


@pytest.mark.parametrize("orientation,expected_size", [(6, (20, 40)), (3, (40, 20)), (8, (20, 40))])
def test_exif_orientation_is_applied(orientation, expected_size):
    image = PILImage.new("RGB", (40, 20), (0, 0, 0))
    image.putpixel((0, 0), (255, 255, 255))
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    result = normalise_image(_encode(image, "PNG", exif=exif), **LIMITS)
    assert (result.width, result.height) == expected_size
    assert result.notes == [f"EXIF orientation {orientation} applied"]
    # The white pixel moved with the rotation: it is no longer where an un-rotated reader would put it.
    decoded = _decoded(result)
    white = np.argwhere(decoded.sum(axis=2) == 765)
    assert len(white) == 1 and tuple(white[0]) != (0, 0)


def test_pixel_hash_ignores_container_differences():
    pixels = PILImage.new("RGB", (16, 16), (120, 80, 60))
    plain = normalise_image(_encode(pixels, "PNG"), **LIMITS)
    with_metadata = normalise_image(_encode(pixels, "PNG", pnginfo=_text_chunk("Generator", "GAN v2")), **LIMITS)
    assert plain.source_sha256 != with_metadata.source_sha256
    assert plain.pixel_sha256 == with_metadata.pixel_sha256


def _text_chunk(key: str, value: str):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(key, value)
    return info
