from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from auditor.generation.baselines import TrainingImages, decode_and_resize, load_training_images
from auditor.generation.baselines.data import BatchSampler

from tests.auditor.generation.baselines.conftest import SUBSET_SIZE, isic_subset_paths_and_diagnoses


def test_subset_decodes_once_to_uint8_squares_with_sorted_class_names(isic_small: TrainingImages) -> None:
    assert isic_small.pixels.dtype == torch.uint8
    assert tuple(isic_small.pixels.shape) == (SUBSET_SIZE, 3, 32, 32)
    assert isic_small.class_names == ("melanoma", "nevus")
    assert isic_small.preprocessing == "exif-transpose,rgb,centre-crop-square,resize=32,filter=pil-lanczos"
    assert len(isic_small.manifest_sha256) == 64


def test_archive_duplicates_decode_to_identical_pixels(isic_dir: Path) -> None:
    # README of the shared data: ISIC_0000279 = ISIC_0000280 and ISIC_0000477 = ISIC_0000512, pixel for pixel.
    names = ["ISIC_0000279", "ISIC_0000280", "ISIC_0000477", "ISIC_0000512"]
    images = load_training_images([isic_dir / "images" / f"{name}.jpg" for name in names], image_size=32)
    assert torch.equal(images.pixels[0], images.pixels[1])
    assert torch.equal(images.pixels[2], images.pixels[3])
    assert not torch.equal(images.pixels[0], images.pixels[2])


def test_manifest_hash_depends_on_content_and_labels(isic_dir: Path) -> None:
    paths, _ = isic_subset_paths_and_diagnoses(isic_dir, 3)
    unlabelled = load_training_images(paths, image_size=32)
    labelled = load_training_images(paths, image_size=32, labels=[0, 1, 0], class_names=["a", "b"])
    relabelled = load_training_images(paths, image_size=32, labels=[1, 1, 0], class_names=["a", "b"])
    given = load_training_images(paths, image_size=32, manifest_sha256="f" * 64)
    assert len({unlabelled.manifest_sha256, labelled.manifest_sha256, relabelled.manifest_sha256}) == 3
    assert load_training_images(paths, image_size=32).manifest_sha256 == unlabelled.manifest_sha256
    assert given.manifest_sha256 == "f" * 64


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_resize_antialiases_and_crops_the_centre_square() -> None:
    # 1-pixel black/white stripes shrunk 8x: an antialiased filter averages them to mid-grey, while point
    # sampling would keep pure black or white. The wide image's outer bands are red, so a centre crop drops them.
    stripes = np.zeros((256, 256, 3), dtype=np.uint8)
    stripes[:, ::2] = 255
    wide = np.concatenate([np.full((256, 64, 3), (255, 0, 0), np.uint8), stripes, np.full((256, 64, 3), (255, 0, 0), np.uint8)], 1)
    resized = decode_and_resize(_png_bytes(wide), 32, "lanczos").astype(np.float64)
    assert resized.shape == (32, 32, 3)
    assert np.abs(resized[:, 2:-2] - 127.5).max() < 2.0  # the outer columns carry Lanczos edge ringing
    assert np.abs(resized[..., 0] - resized[..., 1]).max() == 0  # no red from outside the crop
    nearest = np.asarray(Image.fromarray(stripes).resize((32, 32), Image.Resampling.NEAREST), dtype=np.float64)
    assert np.abs(nearest - 127.5).min() > 120.0


def test_batch_sampler_shows_every_image_once_per_epoch() -> None:
    # Each image is a constant equal to its index, so flips cannot hide which image was drawn.
    count, batch_size = 40, 8
    pixels = torch.arange(count, dtype=torch.uint8).view(count, 1, 1, 1).expand(count, 3, 4, 4).contiguous()
    images = TrainingImages(pixels=pixels, labels=None, class_names=None, manifest_sha256="", preprocessing="")
    sampler = BatchSampler(images, batch_size, seed=0, device=torch.device("cpu"))
    for _ in range(2):  # two epochs
        drawn = torch.cat([sampler.next_batch()[0] for _ in range(count // batch_size)])
        indices = torch.round((drawn[:, 0, 0, 0] + 1.0) * 127.5).long()
        assert sorted(indices.tolist()) == list(range(count))


def test_batch_sampler_flips_about_half_the_images_left_right() -> None:
    ramp = torch.arange(4, dtype=torch.uint8).view(1, 1, 1, 4).expand(64, 3, 4, 4).contiguous()
    images = TrainingImages(pixels=ramp, labels=None, class_names=None, manifest_sha256="", preprocessing="")
    batch, _ = BatchSampler(images, 64, seed=0, device=torch.device("cpu")).next_batch()
    flipped = (batch[:, 0, 0, 0] > batch[:, 0, 0, 3]).sum().item()
    assert 16 <= flipped <= 48  # Binomial(64, 1/2): outside this range with probability < 1e-4


def test_batch_sampler_flips_up_down_independently_of_left_right() -> None:
    # A 4x4 image whose four corners differ: each of the four (up-down, left-right) orientations is recognisable.
    grid = (torch.arange(16, dtype=torch.uint8) * 10).view(1, 1, 4, 4).expand(256, 3, 4, 4).contiguous()
    images = TrainingImages(pixels=grid, labels=None, class_names=None, manifest_sha256="", preprocessing="")
    batch, _ = BatchSampler(images, 256, seed=0, device=torch.device("cpu"), vertical_flip=True).next_batch()
    up_down = batch[:, 0, 0, 0] > batch[:, 0, 3, 0]
    left_right = batch[:, 0, 0, 0] > batch[:, 0, 0, 3]
    counts = [int(((up_down == u) & (left_right == v)).sum()) for u in (False, True) for v in (False, True)]
    assert all(36 <= c <= 92 for c in counts), counts  # Binomial(256, 1/4) each: outside with p < 5e-5 (seeded)
    assert sorted(torch.round((batch[0, 0] + 1.0) * 127.5).flatten().tolist()) == [10.0 * i for i in range(16)]
