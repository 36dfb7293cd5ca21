"""Decoding and the one fixed resize used by every pixel- and feature-based metric.

Files and in-memory arrays go through the same function (`resize_center_crop`), so a JPEG on disk, a PNG on disk
and a uint8 array of GAN samples are treated identically: decode to 8-bit RGB, resize the shorter side with PIL's
bicubic filter (PIL's resize is area-aware, i.e. antialiased, when it shrinks) and crop the centre square.
JPEG draft mode (DCT-domain downscaling) is deliberately not used: it would make JPEG and PNG inputs take
different resampling paths, which is the file-format leak the design notes warn about.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar, Union

import numpy as np
from PIL import Image, ImageOps

ImageSource = Union[str, os.PathLike, np.ndarray, Image.Image]
T = TypeVar("T")

_HASH_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 hex of a file's bytes: the content key of an image on disk."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_array(image: np.ndarray) -> str:
    """SHA-256 hex of an in-memory image: shape and dtype are hashed with the bytes so a reshape is a new key."""
    array = np.ascontiguousarray(image)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def open_rgb(source: ImageSource) -> Image.Image:
    """Decoded 8-bit RGB PIL image from a path, a uint8 HWC array or a PIL image (EXIF orientation applied)."""
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, np.ndarray):
        if source.dtype != np.uint8 or source.ndim != 3 or source.shape[2] != 3:
            raise ValueError(f"in-memory images must be uint8 HxWx3 RGB, got {source.dtype} {source.shape}")
        return Image.fromarray(source, mode="RGB")
    else:
        image = Image.open(os.fspath(source))
        image = ImageOps.exif_transpose(image)
    return image if image.mode == "RGB" else image.convert("RGB")


def resize_center_crop(image: Image.Image, size: int) -> np.ndarray:
    """Shorter side to `size` (PIL bicubic, antialiased when shrinking), then the centre `size`x`size` square."""
    width, height = image.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    if (new_w, new_h) != (width, height):
        image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.uint8)


def load_square(source: ImageSource, size: int) -> np.ndarray:
    """uint8 (size, size, 3) RGB view of one image under the fixed preprocessing above."""
    return resize_center_crop(open_rgb(source), size)


def shorter_side(source: ImageSource) -> int:
    """Shorter side in pixels, read from the header only for files."""
    if isinstance(source, np.ndarray):
        return int(min(source.shape[:2]))
    if isinstance(source, Image.Image):
        return min(source.size)
    with Image.open(os.fspath(source)) as image:
        return min(image.size)


def load_squares(sources: Sequence[ImageSource], size: int, *, workers: int = 2) -> np.ndarray:
    """All images as one uint8 (N, size, size, 3) array, decoded on a small thread pool (PIL releases the GIL)."""
    out = np.empty((len(sources), size, size, 3), dtype=np.uint8)
    for start, batch in iterate_batches(sources, lambda s: load_square(s, size), batch_size=64, workers=workers):
        out[start : start + len(batch)] = np.stack(batch)
    return out


def iterate_batches(
    items: Sequence[ImageSource],
    load: Callable[[ImageSource], T],
    *,
    batch_size: int,
    workers: int = 2,
) -> Iterator[tuple[int, list[T]]]:
    """Yield (start index, loaded batch) while the next batch is already decoding in the background.

    At most two batches are in flight, so memory stays bounded by the batch size, not by N.
    """
    if not items:
        return
    starts = list(range(0, len(items), batch_size))
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:

        def submit(start: int) -> list[Future[T]]:
            return [pool.submit(load, item) for item in items[start : start + batch_size]]

        pending = submit(starts[0])
        for position, start in enumerate(starts):
            upcoming = submit(starts[position + 1]) if position + 1 < len(starts) else []
            yield start, [future.result() for future in pending]
            pending = upcoming
