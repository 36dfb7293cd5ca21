"""Per-file validation and normalisation of uploaded images, and labels.csv parsing.

Every function here is pure (bytes in, a normalised image or an `IngestRejected` with a reason out), so the
importer can apply the same rules to uploads, zip entries and folders.
"""
from __future__ import annotations

import csv
import hashlib
import io
import warnings
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import numpy as np
from PIL import Image, ImageOps

SUPPORTED_FORMATS = {"JPEG", "PNG", "TIFF", "BMP", "WEBP"}
# Formats whose original bytes are kept as the stored file when no normalisation was needed.
KEEP_ORIGINAL_FORMATS = {"JPEG": ".jpg", "PNG": ".png"}
# Files that travel beside images in folders and zips and are not images; skipped, not errors.
SIDE_FILE_SUFFIXES = {".txt", ".md", ".csv", ".json", ".pdf", ".html", ".htm", ".rtf"}
LABELS_FILE_NAME = "labels.csv"
KNOWN_LABEL_COLUMNS = {"file", "diagnosis", "fitzpatrick", "acquisition"}
ACQUISITIONS = {"dermoscopic", "clinical"}


class IngestRejected(Exception):
    """A file that cannot be imported; `reason` is shown to the user next to the file name."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class NormalisedImage:
    stored_bytes: bytes
    stored_suffix: str
    sha256: str
    pixel_sha256: str
    source_sha256: str
    width: int
    height: int
    original_format: str
    original_mode: str
    notes: list[str] = field(default_factory=list)


def _is_sixteen_bit(image: Image.Image) -> bool:
    if image.mode.startswith("I;16"):
        return True
    # Pillow reads 16-bit-per-channel RGB(A) PNGs as 8-bit RGB; the raw mode of its tile says so.
    for tile in getattr(image, "tile", None) or []:
        args = tile[3] if len(tile) > 3 else None
        rawmode = args[0] if isinstance(args, tuple) and args else args
        if isinstance(rawmode, str) and "16" in rawmode:
            return True
    return False


def _to_rgb(image: Image.Image, notes: list[str], sixteen_bit: bool) -> Image.Image:
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        array = np.asarray(image)
        if mode == "I" and not sixteen_bit:
            raise IngestRejected(f"unsupported pixel mode {mode} (32-bit integer)")
        # 16-bit to 8-bit by the exact linear map 0..65535 -> 0..255.
        scaled = np.clip(np.rint(array.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)
        notes.append("16-bit grayscale scaled to 8-bit and expanded to RGB")
        return Image.fromarray(scaled, mode="L").convert("RGB")
    if sixteen_bit:
        notes.append("16-bit per channel reduced to 8-bit")
    if mode == "RGB":
        return image
    if mode == "P":
        image = image.convert("RGBA") if "transparency" in image.info else image.convert("RGB")
        notes.append("palette image expanded to RGB")
        mode = image.mode
        if mode == "RGB":
            return image
    if mode in {"RGBA", "LA", "PA", "RGBa", "La"}:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        notes.append(f"alpha channel ({mode}) composited on white")
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in {"L", "1"}:
        notes.append(f"grayscale ({mode}) expanded to RGB")
        return image.convert("RGB")
    if mode == "CMYK":
        notes.append("CMYK converted to RGB (Pillow's conversion, no ICC profile applied)")
        return image.convert("RGB")
    if mode in {"YCbCr", "LAB", "HSV"}:
        notes.append(f"{mode} converted to RGB")
        return image.convert("RGB")
    raise IngestRejected(f"unsupported pixel mode {mode}")


def _oriented_rgb(image: Image.Image, notes: list[str], sixteen_bit: bool) -> Image.Image:
    if getattr(image, "n_frames", 1) > 1:
        notes.append(f"multi-frame image: first of {image.n_frames} frames kept")
    orientation = image.getexif().get(0x0112, 1)
    if orientation not in (None, 1):
        transposed = ImageOps.exif_transpose(image)
        if transposed is not None:
            image = transposed
        notes.append(f"EXIF orientation {orientation} applied")
    return _to_rgb(image, notes, sixteen_bit)


def normalise_image(data: bytes, *, max_pixels: int, max_bytes: int) -> NormalisedImage:
    """Decode fully, check, and normalise to 8-bit RGB with EXIF orientation applied.

    Raises IngestRejected with a user-facing reason for anything that is not a sound image.
    """
    if not data:
        raise IngestRejected("empty file (0 bytes)")
    if len(data) > max_bytes:
        raise IngestRejected(f"file is {len(data):,} bytes, over the per-file limit of {max_bytes:,} bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            # Checked before decoding a single pixel: the header alone tells the size.
            if width * height > max_pixels:
                raise IngestRejected(
                    f"image is {width}x{height} = {width * height:,} pixels, over the limit of "
                    f"{max_pixels:,} pixels (decompression-bomb guard)"
                )
            original_format = image.format or "unknown"
            original_mode = image.mode
            if original_format not in SUPPORTED_FORMATS:
                raise IngestRejected(
                    f"unsupported image format {original_format} (supported: {', '.join(sorted(SUPPORTED_FORMATS))})"
                )
            sixteen_bit = _is_sixteen_bit(image)
            image.load()
            notes: list[str] = []
            rgb = _oriented_rgb(image, notes, sixteen_bit)
            pixels = np.asarray(rgb, dtype=np.uint8)
    except IngestRejected:
        raise
    except Image.UnidentifiedImageError:
        raise IngestRejected("not an image file (Pillow cannot identify its format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise IngestRejected(f"decompression bomb: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise IngestRejected(f"corrupt or truncated image: {exc}") from None
    except Exception as exc:
        # Pillow's format plugins fail in their own ways on hostile bytes (fuzzing found a corrupt multi-frame
        # TIFF raising TypeError "Missing dimensions" from n_frames). Still this file's fault: reject the file,
        # never the batch.
        raise IngestRejected(f"corrupt image ({type(exc).__name__}: {exc})") from None

    width, height = rgb.size
    pixel_sha256 = hashlib.sha256(f"{width}x{height}:".encode() + pixels.tobytes()).hexdigest()
    source_sha256 = hashlib.sha256(data).hexdigest()

    if not notes and original_format in KEEP_ORIGINAL_FORMATS:
        stored_bytes, suffix = data, KEEP_ORIGINAL_FORMATS[original_format]
    else:
        buffer = io.BytesIO()
        rgb.save(buffer, format="PNG", compress_level=3)
        stored_bytes, suffix = buffer.getvalue(), ".png"
    return NormalisedImage(
        stored_bytes=stored_bytes,
        stored_suffix=suffix,
        sha256=hashlib.sha256(stored_bytes).hexdigest(),
        pixel_sha256=pixel_sha256,
        source_sha256=source_sha256,
        width=width,
        height=height,
        original_format=original_format,
        original_mode=original_mode,
        notes=notes,
    )


def is_side_file(name: str) -> bool:
    path = PurePosixPath(name)
    return path.name != LABELS_FILE_NAME and path.suffix.lower() in SIDE_FILE_SUFFIXES


@dataclass
class ImageLabels:
    diagnosis: str = ""
    fitzpatrick: int | None = None
    acquisition: str = ""
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class LabelTable:
    by_path: dict[str, ImageLabels]
    errors: list[str]

    def lookup(self, relative_name: str) -> ImageLabels | None:
        """Match on the path relative to the labels file, then on the bare file name."""
        key = PurePosixPath(relative_name).as_posix().lstrip("./")
        found = self.by_path.get(key)
        if found is None:
            found = self.by_path.get(PurePosixPath(key).name)
        return found


def parse_labels_csv(data: bytes, source: str = LABELS_FILE_NAME) -> LabelTable:
    """Parse labels.csv (columns as in ../shared/data/*/labels.csv); bad cells become errors, not exceptions."""
    errors: list[str] = []
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return LabelTable({}, [f"{source}: not UTF-8 text; labels ignored"])
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "file" not in reader.fieldnames:
        return LabelTable({}, [f"{source}: no 'file' column; labels ignored"])
    by_path: dict[str, ImageLabels] = {}
    for line_number, row in enumerate(reader, start=2):
        name = (row.get("file") or "").strip()
        if not name:
            errors.append(f"{source} line {line_number}: empty 'file' cell")
            continue
        labels = ImageLabels(diagnosis=(row.get("diagnosis") or "").strip()[:100])
        fitzpatrick = (row.get("fitzpatrick") or "").strip()
        if fitzpatrick:
            try:
                value = int(float(fitzpatrick))
            except ValueError:
                value = 0
            if 1 <= value <= 6 and float(fitzpatrick) == value:
                labels.fitzpatrick = value
            else:
                errors.append(f"{source} line {line_number}: fitzpatrick {fitzpatrick!r} is not an integer 1-6; left unlabelled")
        acquisition = (row.get("acquisition") or "").strip().lower()
        if acquisition:
            if acquisition in ACQUISITIONS:
                labels.acquisition = acquisition
            else:
                errors.append(f"{source} line {line_number}: acquisition {acquisition!r} is not dermoscopic/clinical; left unlabelled")
        labels.extra = {k: (v or "").strip() for k, v in row.items() if k and k not in KNOWN_LABEL_COLUMNS and v}
        key = PurePosixPath(name).as_posix().lstrip("./")
        by_path[key] = labels
        by_path.setdefault(PurePosixPath(key).name, labels)
    return LabelTable(by_path, errors)
