"""Training images for the baseline generators: decode and resize once, augment on the fly.

A reference set here is a few hundred images, so the whole set lives in memory as one uint8 tensor
(557 images at 64 px are 6.8 MB). Each image is centre-cropped to a square and resized with a named PIL
filter (antialiased when shrinking); the preprocessing string records both so the checkpoint says exactly
what the generator was trained to imitate.
"""
from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

RESIZE_FILTERS = {
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "box": Image.Resampling.BOX,
}


@dataclass(frozen=True)
class TrainingImages:
    pixels: torch.Tensor  # uint8, (N, 3, S, S), RGB
    labels: torch.Tensor | None  # int64, (N,), indices into class_names
    class_names: tuple[str, ...] | None
    manifest_sha256: str
    preprocessing: str

    def __post_init__(self) -> None:
        if self.pixels.dtype != torch.uint8 or self.pixels.ndim != 4 or self.pixels.shape[1] != 3:
            raise ValueError(f"pixels must be uint8 (N, 3, S, S), got {self.pixels.dtype} {tuple(self.pixels.shape)}")
        if self.pixels.shape[2] != self.pixels.shape[3]:
            raise ValueError("training images must be square")
        if (self.labels is None) != (self.class_names is None):
            raise ValueError("labels and class_names go together")
        if self.labels is not None:
            assert self.class_names is not None
            if self.labels.shape != (len(self.pixels),):
                raise ValueError("one label per image")
            if len(self.labels) and (int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.class_names)):
                raise ValueError("labels must index class_names")

    def __len__(self) -> int:
        return len(self.pixels)

    @property
    def image_size(self) -> int:
        return int(self.pixels.shape[-1])

    @property
    def num_classes(self) -> int:
        return len(self.class_names) if self.class_names else 0

    def class_frequencies(self) -> np.ndarray:
        """Share of each class in the training set (float64, sums to 1)."""
        if self.labels is None:
            raise ValueError("these training images have no labels")
        counts = np.bincount(self.labels.numpy(), minlength=self.num_classes).astype(np.float64)
        return counts / counts.sum()


def encode_class_labels(values: Sequence[str]) -> tuple[list[int], tuple[str, ...]]:
    """['nevus', 'melanoma', 'nevus'] -> ([1, 0, 1], ('melanoma', 'nevus')): classes sorted, so stable across runs."""
    class_names = tuple(sorted(set(values)))
    index = {name: i for i, name in enumerate(class_names)}
    return [index[value] for value in values], class_names


def preprocessing_description(image_size: int, resize_filter: str) -> str:
    return f"exif-transpose,rgb,centre-crop-square,resize={image_size},filter=pil-{resize_filter}"


def decode_and_resize(data: bytes, image_size: int, resize_filter: str = "lanczos") -> np.ndarray:
    """Image bytes -> uint8 (S, S, 3): EXIF orientation applied, RGB, centre square crop, resized with the filter."""
    with Image.open(io.BytesIO(data)) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    # Crop first (rather than resize's `box`), so the filter's support never reaches pixels outside the square.
    square = image.crop((left, top, left + side, top + side))
    resized = square.resize((image_size, image_size), resample=RESIZE_FILTERS[resize_filter])
    return np.asarray(resized, dtype=np.uint8)


def load_training_images(
    paths: Sequence[str | Path],
    *,
    image_size: int = 64,
    labels: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    manifest_sha256: str | None = None,
    resize_filter: str = "lanczos",
) -> TrainingImages:
    """Decode every image once into memory.

    `manifest_sha256` is the caller's identity of the training set (the service passes its ImageSet manifest
    hash). Without one, it is computed here from the images' content hashes and class names, in order.
    """
    if resize_filter not in RESIZE_FILTERS:
        raise ValueError(f"resize_filter must be one of {sorted(RESIZE_FILTERS)}, got {resize_filter!r}")
    if not paths:
        raise ValueError("no training images")
    if labels is not None and len(labels) != len(paths):
        raise ValueError(f"{len(labels)} labels for {len(paths)} images")
    if (labels is None) != (class_names is None):
        raise ValueError("pass labels and class_names together")
    manifest = hashlib.sha256()
    arrays = []
    for i, path in enumerate(paths):
        data = Path(path).read_bytes()
        arrays.append(decode_and_resize(data, image_size, resize_filter))
        label = "" if labels is None or class_names is None else class_names[int(labels[i])]
        manifest.update(f"{hashlib.sha256(data).hexdigest()} {label}\n".encode())
    pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return TrainingImages(
        pixels=pixels,
        labels=None if labels is None else torch.tensor([int(v) for v in labels], dtype=torch.int64),
        class_names=None if class_names is None else tuple(class_names),
        manifest_sha256=manifest_sha256 or manifest.hexdigest(),
        preprocessing=preprocessing_description(image_size, resize_filter),
    )


def to_model_range(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return pixels.float().mul_(2.0 / 255.0).sub_(1.0)


def to_uint8_nhwc(images: torch.Tensor) -> np.ndarray:
    """float [-1, 1] (B, 3, H, W) -> uint8 (B, H, W, 3), rounding to nearest."""
    scaled = ((images.detach().float().clamp(-1.0, 1.0) + 1.0) * 127.5).round()
    return scaled.to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()


class BatchSampler:
    """Endless stream of (images in [-1, 1], labels) batches.

    Images are drawn epoch by epoch without replacement (a fresh permutation each epoch) so every image is seen
    equally often, and each is mirrored left-right with probability 1/2 (and up-down when `vertical_flip`;
    dermoscopy has no canonical orientation). The order is drawn on the CPU, so it is the same on every device.
    """

    def __init__(
        self,
        images: TrainingImages,
        batch_size: int,
        *,
        seed: int,
        device: torch.device,
        vertical_flip: bool = False,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> None:
        self.pixels = images.pixels.to(device)
        self.labels = None if images.labels is None else images.labels.to(device)
        self.batch_size = batch_size
        self.device = device
        self.vertical_flip = vertical_flip
        self.memory_format = memory_format
        self._order_generator = torch.Generator().manual_seed(seed)
        self._flip_generator = torch.Generator(device=device).manual_seed(seed + 1)
        self._order = torch.empty(0, dtype=torch.int64)
        self._position = 0

    def _next_indices(self) -> torch.Tensor:
        chunks, needed = [], self.batch_size
        while needed:
            if self._position == len(self._order):
                self._order = torch.randperm(len(self.pixels), generator=self._order_generator)
                self._position = 0
            take = min(needed, len(self._order) - self._position)
            chunks.append(self._order[self._position : self._position + take])
            self._position += take
            needed -= take
        return torch.cat(chunks).to(self.device)

    def _random_flip(self, batch: torch.Tensor, dim: int) -> torch.Tensor:
        flip = torch.rand(len(batch), device=self.device, generator=self._flip_generator) < 0.5
        return torch.where(flip.view(-1, 1, 1, 1), batch.flip(dim), batch)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        indices = self._next_indices()
        batch = self._random_flip(to_model_range(self.pixels[indices]), dim=3)
        if self.vertical_flip:
            batch = self._random_flip(batch, dim=2)
        batch = batch.contiguous(memory_format=self.memory_format)
        return batch, None if self.labels is None else self.labels[indices]
