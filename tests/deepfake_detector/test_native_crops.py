"""Native-resolution crops: the window, the tiles and their alignment, and what they buy on real images.

The claim the audit rests on (issue #25): a generator's 2x upsampling trace on real dermoscopic images is found by the
cross-fitted ViT when it reads native crops, and missed when it reads the whole image resized to 64 px; two sets of
real images stay indistinguishable either way.
"""
from __future__ import annotations

import numpy as np
import pytest

from deepfake_detector.crops import ALIGN, random_crop, stitch, tile_offsets, tiles, window_of
from deepfake_detector.crossfit import (
    AUDIT_NATIVE_AUGMENTATION,
    AUDIT_NATIVE_MODEL,
    AUDIT_NATIVE_PREPROCESSING,
    crossfit_detector,
)
from deepfake_detector.data import Preprocessing, jpeg_roundtrip, standardise_image, standardise_images
from deepfake_detector.perturbations import upsampling_trace
from metrics.image_io import open_rgb
from tests.metrics.conftest import labelled_paths


def test_the_window_is_cut_unresampled_at_aligned_offsets():
    pixels = np.random.default_rng(0).integers(0, 256, (384, 515, 3), dtype=np.uint8)
    window, resized = window_of(pixels, 64, 128)
    assert window.shape == (128, 128, 3) and not resized
    top, left = (384 - 128) // 2 // ALIGN * ALIGN, (515 - 128) // 2 // ALIGN * ALIGN
    assert np.array_equal(window, pixels[top:top + 128, left:left + 128])
    small, _ = window_of(pixels[:100, :90], 64, 128)  # shorter side 90: an aligned 88-px window, still native
    assert small.shape == (88, 88, 3)
    tiny, resized = window_of(pixels[:40, :50], 64, 128)  # too small for a native crop: resized up, and said so
    assert tiny.shape == (64, 64, 3) and resized


def test_standardising_for_native_crops_re_encodes_the_whole_image_first(isic_dir):
    path = labelled_paths(isic_dir)[0]
    preprocessing = Preprocessing(size=64, window=128)
    whole = jpeg_roundtrip(np.asarray(open_rgb(path)), preprocessing.jpeg_quality)
    assert np.array_equal(standardise_image(path, preprocessing), window_of(whole, 64, 128)[0])
    windows = standardise_images([path, path], preprocessing)
    assert windows.dtype == object and len(windows) == 2 and "native-centre-window-128px" in preprocessing.name


def test_tiles_cover_the_window_and_stitch_back():
    window = np.random.default_rng(1).integers(0, 256, (136, 136, 3), dtype=np.uint8)
    assert tile_offsets(136, 64) == [0, 72] and tile_offsets(64, 64) == [0] and tile_offsets(200, 64) == [0, 64, 136]
    assert all(offset % ALIGN == 0 for offset in tile_offsets(200, 64))
    crops = tiles(window, 64)
    assert crops.shape == (4, 64, 64, 3) and np.array_equal(crops[3], window[72:136, 72:136])
    assert np.allclose(stitch(np.ones((4, 64, 64)), 136, 64)[:64, :64], 1.0)
    rng = np.random.default_rng(2)
    for _ in range(20):
        crop = random_crop(window, 64, rng)
        hits = [(top, left) for top in range(0, 73, 8) for left in range(0, 73, 8)
                if np.array_equal(crop, window[top:top + 64, left:left + 64])]
        assert hits  # at an offset that is a multiple of 8


@pytest.fixture(scope="module")
def halves(isic_dir):
    """Two disjoint sets of 70 isic-uda1 images (every other one of the first 140)."""
    paths = labelled_paths(isic_dir)[:140]
    return paths[0::2], paths[1::2]


@pytest.mark.slow
def test_native_crops_find_an_upsampling_trace_that_a_whole_image_resize_hides(halves):
    real_paths, other_paths = halves
    traced = [upsampling_trace(np.asarray(open_rgb(path)), "nearest") for path in other_paths]
    resized = Preprocessing(size=64)

    def auc(preprocessing, real, synthetic):
        result = crossfit_detector(real, synthetic, folds=3, epochs=20, steps=100, model=AUDIT_NATIVE_MODEL,
                                   preprocessing=preprocessing, augmentation=AUDIT_NATIVE_AUGMENTATION,
                                   select_best_epoch=False, seed=3)
        return result.detectability.auc

    native = AUDIT_NATIVE_PREPROCESSING
    real_windows = standardise_images(real_paths, native)
    assert auc(native, real_windows, standardise_images(traced, native)) > 0.85
    assert auc(resized, standardise_images(real_paths, resized), standardise_images(traced, resized)) < 0.7
    assert auc(native, real_windows, standardise_images(other_paths, native)) < 0.7  # real against real
