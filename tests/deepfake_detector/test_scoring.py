"""score_images: the same answer whatever form the images arrive in, and calibrated by the detector's T."""
from __future__ import annotations

import numpy as np
import pytest

from deepfake_detector import apply_temperature, compute_logits, score_images


@pytest.mark.slow
def test_paths_arrays_and_batch_sizes_agree(toy_training, isic_paths, isic_64):
    detector = toy_training.detector
    from_paths = score_images(detector, isic_paths[:20], batch_size=7)
    from_arrays = score_images(detector, isic_64[:20], batch_size=256)
    from_list = score_images(detector, list(isic_64[:20]), batch_size=5)
    np.testing.assert_allclose(from_paths, from_arrays, rtol=0, atol=1e-6)
    np.testing.assert_allclose(from_list, from_arrays, rtol=0, atol=1e-6)
    assert from_arrays.dtype == np.float64 and from_arrays.shape == (20,)


@pytest.mark.slow
def test_calibrated_probabilities_use_the_temperature(toy_training, isic_64):
    detector = toy_training.detector
    logits = compute_logits(detector, isic_64[:16])
    np.testing.assert_allclose(score_images(detector, isic_64[:16]), apply_temperature(logits, detector.temperature))
    np.testing.assert_allclose(score_images(detector, isic_64[:16], calibrated=False), apply_temperature(logits))
    assert score_images(detector, isic_64[:0]).shape == (0,)
