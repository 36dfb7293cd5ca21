"""One preprocessing for all images, and splits that keep patients apart."""
from __future__ import annotations

import ast
import io
from pathlib import Path

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

import deepfake_detector
from deepfake_detector import hash_images, split_by_group, standardise_image, standardise_images
from deepfake_detector.data import LabelledImages, encode_for_model, jpeg_roundtrip


def test_standardised_array_passes_through_unchanged(isic_64):
    assert standardise_images(isic_64) is isic_64
    # The per-image path (PIL) must agree with the fast path, or arrays and files would be scored differently.
    np.testing.assert_array_equal(standardise_image(isic_64[0]), isic_64[0])


def test_centre_square_crop_and_alpha_drop():
    # A 96x64 RGBA image: left third red, middle blue, right third green; alpha must be ignored.
    rgba = np.zeros((64, 96, 4), dtype=np.uint8)
    rgba[:, :32, 0] = 255
    rgba[:, 32:64, 2] = 255
    rgba[:, 64:, 1] = 255
    rgba[..., 3] = 7
    out = standardise_image(rgba)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    # The centre square is columns 16..79: mostly blue in the middle, red on the left edge, green on the right.
    assert out[32, 32].tolist() == [0, 0, 255]
    assert out[32, 0, 0] == 255 and out[32, 63, 1] == 255


def test_file_format_and_metadata_do_not_change_the_standardised_pixels(isic_64):
    # The same pixels as PNG with a text chunk and as lossless WebP must decode to the same array.
    source = isic_64[3]
    png = io.BytesIO()
    info = PngInfo()
    info.add_text("Software", "StyleGAN2 sampler")
    Image.fromarray(source).save(png, format="PNG", pnginfo=info)
    webp = io.BytesIO()
    Image.fromarray(source).save(webp, format="WEBP", lossless=True)
    for buffer in (png, webp):
        buffer.seek(0)
        np.testing.assert_array_equal(standardise_image(Image.open(buffer)), source)


def test_model_encoding_is_deterministic_and_idempotent_enough(isic_64):
    once = encode_for_model(isic_64[:8])
    np.testing.assert_array_equal(once, encode_for_model(isic_64[:8]))
    # A second pass of the q95 round trip moves pixels by at most a few levels.
    assert np.abs(encode_for_model(once).astype(int) - once).max() <= 6
    assert np.abs(jpeg_roundtrip(isic_64[0], 95).astype(int) - isic_64[0]).mean() < 2.0


def test_split_keeps_groups_together_and_is_reproducible():
    rng = np.random.default_rng(0)
    patients = [f"P{rng.integers(0, 40)}" for _ in range(150)]
    pixels = rng.integers(0, 256, (250, 2, 2, 3), dtype=np.uint8)
    dataset = LabelledImages.from_classes(pixels[:150], pixels[150:], real_groups=patients)
    split = split_by_group(dataset.labels, dataset.groups, seed=3)
    parts = [split.train, split.validation, split.test]
    assert sorted(np.concatenate(parts).tolist()) == list(range(250))
    group_sets = [set(dataset.groups[p].tolist()) for p in parts]
    assert not (group_sets[0] & group_sets[1] or group_sets[0] & group_sets[2] or group_sets[1] & group_sets[2])
    # Roughly 70/15/15 per class.
    for part, share in zip(parts, (0.7, 0.15, 0.15)):
        for label, total in ((0, 150), (1, 100)):
            assert abs((dataset.labels[part] == label).sum() / total - share) < 0.08
    again = split_by_group(dataset.labels, dataset.groups, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(parts, [again.train, again.validation, again.test]))
    assert not np.array_equal(split.test, split_by_group(dataset.labels, dataset.groups, seed=4).test)


def test_identical_images_without_group_share_a_split():
    rng = np.random.default_rng(1)
    real = rng.integers(0, 256, (60, 2, 2, 3), dtype=np.uint8)
    real[7] = real[3]  # like the archive's byte-identical pairs
    synthetic = rng.integers(0, 256, (60, 2, 2, 3), dtype=np.uint8)
    synthetic[0] = real[3]  # a generator sample that copied a training image
    dataset = LabelledImages.from_classes(real, synthetic)
    for seed in range(5):
        split = split_by_group(dataset.labels, dataset.groups, seed=seed)
        homes = {name for name in ("train", "validation", "test") for i in (3, 7, 60) if i in getattr(split, name)}
        assert len(homes) == 1


def test_hash_images_is_content_based(isic_64):
    assert hash_images(isic_64[:4]) == hash_images(isic_64[:4].copy())
    changed = isic_64[:4].copy()
    changed[0, 0, 0, 0] ^= 1
    assert hash_images(changed) != hash_images(isic_64[:4])


def test_library_imports_neither_django_nor_the_service():
    # Statically, every module of the package: importing it must not need Django settings (auditor imports Django).
    package = Path(deepfake_detector.__file__).parent
    imported = set()
    for module in package.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    assert "torch" in imported and "pytorch_grad_cam" in imported  # the scan sees real imports
    assert not imported & {"django", "auditor", "rest_framework", "celery"}
