"""One preprocessing for every image the detector sees, and leakage-free splits.

Real images usually arrive as JPEG and generated ones as PNG, at different sizes and with different metadata. A
detector fed the files as they are learns the file format, not the generator. So every image, whatever its class
or source, goes through the same two steps before the network sees it:

1. ``standardise_image``: decode, apply the EXIF orientation, drop alpha/metadata, convert to RGB, crop the centred
   square, resize to a fixed side with Pillow's Lanczos filter (antialiased when shrinking) -> uint8 HxWx3. Lanczos
   because the baseline generators (auditor/generation/baselines) are trained on images resized that way: a different filter
   for the real class would hand the detector a difference that is ours, not the generator's.
2. ``encode_for_model``: an in-memory JPEG round trip at a fixed quality (4:4:4, no chroma subsampling), so the last
   encoder every pixel passed through is the same one for both classes.

Training augmentation and robustness perturbations happen between the two steps, so step 2 is always the final one.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence, Union

import numpy as np
from PIL import Image, ImageOps

from deepfake_detector.crops import window_of

ImageSource = Union[str, Path, Image.Image, np.ndarray]

REAL_LABEL = 0
SYNTHETIC_LABEL = 1


@dataclass(frozen=True)
class Preprocessing:
    size: int = 64
    jpeg_quality: int = 95
    # 0: the whole image resized to `size` (the screen detector's input). > 0: native-resolution crops of `size` px
    # from a centred window of at most this many px (deepfake_detector/crops.py), for detectors that must see the
    # generator's pixel-scale traces.
    window: int = 0

    @property
    def native(self) -> bool:
        return self.window > 0

    @property
    def name(self) -> str:
        # Recorded in checkpoints and results: a different resize filter or quality is a different detector input.
        if self.native:
            return (f"rgb|jpeg-q{self.jpeg_quality}-444-whole-image|native-centre-window-{self.window}px-aligned-8|"
                    f"crops-{self.size}px|tiles-mean-logit")
        return f"rgb|center-square-crop|pil-lanczos-{self.size}px|jpeg-q{self.jpeg_quality}-444"


def _to_pil(source: ImageSource) -> Image.Image:
    if isinstance(source, (str, Path)):
        with Image.open(source) as opened:
            opened.load()
            return ImageOps.exif_transpose(opened)
    if isinstance(source, Image.Image):
        return ImageOps.exif_transpose(source)
    array = np.asarray(source)
    if array.dtype != np.uint8:
        raise ValueError(f"image arrays must be uint8, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return Image.fromarray(array)


def standardise_image(source: ImageSource, preprocessing: Preprocessing = Preprocessing()) -> np.ndarray:
    """Decode any supported source to a uint8 ``size x size x 3`` array (step 1 of the preprocessing); with a native
    preprocessing, to its native window (crops.window_of), of side between ``size`` and ``window``."""
    image = _to_pil(source).convert("RGB")
    if preprocessing.native:
        # The whole image through the same encoder first, for both classes; then the native window, unresampled.
        pixels = jpeg_roundtrip(np.asarray(image, dtype=np.uint8), preprocessing.jpeg_quality)
        return window_of(pixels, preprocessing.size, preprocessing.window)[0]
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    if (width, height) != (side, side):
        image = image.crop((left, top, left + side, top + side))
    if side != preprocessing.size:
        image = image.resize((preprocessing.size, preprocessing.size), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.uint8).copy()


def standardise_images(
    sources: Union[np.ndarray, Sequence[ImageSource]], preprocessing: Preprocessing = Preprocessing()
) -> np.ndarray:
    """Standardise many images to one uint8 NHWC array. Arrays already at the target shape pass through unchanged.
    With a native preprocessing: a 1-d object array of windows (their sides differ with the images' sizes)."""
    size = preprocessing.size
    if preprocessing.native:
        if isinstance(sources, np.ndarray) and sources.dtype == object:
            return sources  # windows already
        return as_windows([standardise_image(source, preprocessing) for source in sources])
    if isinstance(sources, np.ndarray) and sources.dtype == np.uint8 and sources.shape[1:] == (size, size, 3):
        return sources
    standardised = [standardise_image(source, preprocessing) for source in sources]
    if not standardised:
        return np.zeros((0, size, size, 3), dtype=np.uint8)
    return np.stack(standardised)


def as_windows(windows: Sequence[np.ndarray]) -> np.ndarray:
    """A 1-d object array holding one window per image (numpy indexing and concatenation keep working)."""
    out = np.empty(len(windows), dtype=object)
    for index, window in enumerate(windows):
        out[index] = window
    return out


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode a uint8 HxWx3 array as JPEG (4:4:4) in memory and decode it again."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality), subsampling=0)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"), dtype=np.uint8).copy()


def encode_for_model(images: np.ndarray, preprocessing: Preprocessing = Preprocessing()) -> np.ndarray:
    """Step 2 of the preprocessing: the same JPEG round trip for every image of a uint8 NHWC batch."""
    return np.stack([jpeg_roundtrip(image, preprocessing.jpeg_quality) for image in images]) if len(images) else images


def hash_images(images: np.ndarray) -> str:
    """SHA-256 of a uint8 NHWC array's shape and pixels: a content manifest hash for notebooks and benchmarks."""
    digest = hashlib.sha256(str(tuple(images.shape)).encode())
    digest.update(np.ascontiguousarray(images, dtype=np.uint8).tobytes())
    return digest.hexdigest()


@dataclass
class LabelledImages:
    """Standardised images (uint8 NHWC), labels (0 real, 1 synthetic) and a group id per image (patient or image)."""

    images: np.ndarray
    labels: np.ndarray
    groups: np.ndarray

    def __post_init__(self) -> None:
        if not (len(self.images) == len(self.labels) == len(self.groups)):
            raise ValueError("images, labels and groups must have the same length")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: np.ndarray) -> "LabelledImages":
        return LabelledImages(self.images[indices], self.labels[indices], self.groups[indices])

    @classmethod
    def from_classes(
        cls,
        real: np.ndarray,
        synthetic: np.ndarray,
        real_groups: Sequence[str | None] | None = None,
        synthetic_groups: Sequence[str | None] | None = None,
    ) -> "LabelledImages":
        """Join standardised real and synthetic images.

        An image without a group id is grouped by its pixels, so identical copies (the archive's duplicate pairs,
        a generator sample that memorised a training image) always land in the same split.
        """
        groups = _complete_groups(real, real_groups, "real") + _complete_groups(synthetic, synthetic_groups, "synthetic")
        labels = np.concatenate(
            [np.full(len(real), REAL_LABEL, dtype=np.int64), np.full(len(synthetic), SYNTHETIC_LABEL, dtype=np.int64)]
        )
        return cls(np.concatenate([real, synthetic]), labels, np.array(groups, dtype=object))


def _complete_groups(images: np.ndarray, groups: Sequence[str | None] | None, prefix: str) -> list[str]:
    if groups is None:
        groups = [None] * len(images)
    if len(groups) != len(images):
        raise ValueError(f"{prefix}: {len(groups)} group ids for {len(images)} images")
    # Patient ids get the class as prefix, so a real patient id cannot collide with a synthetic group name.
    return [
        f"{prefix}:{group}" if group is not None else f"content:{hashlib.sha256(image.tobytes()).hexdigest()}"
        for image, group in zip(images, groups)
    ]


@dataclass(frozen=True)
class DataSplit:
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    def as_lists(self) -> dict[str, list[int]]:
        return {name: [int(i) for i in getattr(self, name)] for name in ("train", "validation", "test")}


def split_by_group(
    labels: np.ndarray,
    groups: Sequence[str] | np.ndarray,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> DataSplit:
    """Assign whole groups (patients, or single images) to train/validation/test, roughly stratified by class.

    Groups are visited in a seeded random order; each goes to the split that is furthest below its target share
    for the classes that group contains. No group is ever split, so no patient appears in two splits.
    """
    labels = np.asarray(labels)
    groups = np.asarray(groups, dtype=object)
    if not np.isclose(sum(fractions), 1.0) or min(fractions) <= 0:
        raise ValueError(f"fractions must be positive and sum to 1, got {fractions}")
    classes = np.unique(labels)
    class_totals = np.array([(labels == c).sum() for c in classes], dtype=np.float64)
    targets = np.outer(np.asarray(fractions, dtype=np.float64), class_totals)  # split x class
    filled = np.zeros_like(targets)

    unique_groups = sorted(set(groups.tolist()))
    order = np.random.default_rng(seed).permutation(len(unique_groups))
    members: dict[str, list[int]] = {}
    for index, group in enumerate(groups.tolist()):
        members.setdefault(group, []).append(index)

    assigned: list[list[int]] = [[], [], []]
    for position in order:
        indices = members[unique_groups[position]]
        counts = np.array([(labels[indices] == c).sum() for c in classes], dtype=np.float64)
        deficit = ((targets - filled) / np.maximum(class_totals, 1) * counts).sum(axis=1)
        chosen = int(np.argmax(deficit))
        filled[chosen] += counts
        assigned[chosen].extend(indices)
    train, validation, test = (np.array(sorted(part), dtype=np.int64) for part in assigned)
    return DataSplit(train=train, validation=validation, test=test)


def iter_chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
