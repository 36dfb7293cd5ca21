"""SSIM and PSNR equal scikit-image's on the same pixels; paired mode reads source_file and summarises pairs."""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torchmetrics.functional.image import structural_similarity_index_measure

from metrics.image_io import load_square
from metrics.paired import compute_paired_similarity, read_pairs
from metrics.pixel_similarity import psnr_pairs, ssim_pairs


@pytest.fixture(scope="module")
def image_pairs(pad_paths) -> tuple[np.ndarray, np.ndarray]:
    originals = np.stack([load_square(path, 96) for path in pad_paths[:4]])
    noisy = np.clip(originals + np.random.default_rng(0).normal(0, 12, originals.shape), 0, 255).astype(np.uint8)
    return originals, noisy


def test_psnr_equals_scikit_image(image_pairs) -> None:
    originals, noisy = image_pairs
    expected = [peak_signal_noise_ratio(a, b, data_range=255) for a, b in zip(originals, noisy)]
    np.testing.assert_allclose(psnr_pairs(originals, noisy), expected, rtol=1e-9)


def test_ssim_equals_scikit_image(image_pairs) -> None:
    """torchmetrics averages the SSIM map over the whole image (borders from reflect padding); scikit-image
    averages only the interior it can compute without padding. On that interior the two maps agree."""
    originals, noisy = image_pairs
    ours = ssim_pairs(originals, noisy)
    for index, (a, b) in enumerate(zip(originals, noisy)):
        expected_interior = structural_similarity(
            a / 255.0, b / 255.0, data_range=1.0, channel_axis=2, gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False,
        )
        _, full_map = structural_similarity_index_measure(
            torch.from_numpy(a / 255.0).permute(2, 0, 1)[None], torch.from_numpy(b / 255.0).permute(2, 0, 1)[None],
            data_range=1.0, return_full_image=True,
        )
        assert float(full_map[..., 5:-5, 5:-5].mean()) == pytest.approx(expected_interior, abs=1e-6)
        assert ours[index] == pytest.approx(float(full_map.mean()), abs=1e-4)  # ours runs in float32
        assert ours[index] == pytest.approx(expected_interior, abs=0.03)


def test_paired_mode_from_labels_csv(pad_dir, tmp_path) -> None:
    """A fake 'colour standardisation' output: JPEG re-encodings of PAD-UFES-20 images, one exact copy."""
    rows = []
    for index, name in enumerate(["PAT_100_393_595.png", "PAT_100_393_898.png", "PAT_104_1754_276.png"]):
        source = pad_dir / "images" / name
        image = Image.open(source).convert("RGB")
        out = tmp_path / f"generated_{index}.png"
        if index == 0:
            image.save(out)
        else:
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=30)
            Image.open(buffer).save(out)
        rows.append({"file": out.name, "source_file": f"images/{name}"})
    with open(tmp_path / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "source_file"])
        writer.writeheader()
        writer.writerows(rows)
    generated, sources = read_pairs(tmp_path / "labels.csv", source_root=pad_dir)
    result = compute_paired_similarity(generated, sources, seed=0)
    assert result.n_pairs == 3 and result.identical_pairs == 1
    assert result.per_pair_ssim[0] == pytest.approx(1.0) and result.per_pair_psnr_db[0] is None
    assert 0.5 < result.per_pair_ssim[1] < 1.0 and 20 < result.per_pair_psnr_db[1] < 45
    assert result.psnr_db.n == 2 and "5 scales" in result.settings
    assert result.ssim.ci.low <= result.ssim.mean <= result.ssim.ci.high


def test_paired_mode_requires_a_source_column(tmp_path) -> None:
    (tmp_path / "labels.csv").write_text("file,diagnosis\na.png,NEV\n")
    with pytest.raises(ValueError, match="source_file"):
        read_pairs(tmp_path / "labels.csv")
