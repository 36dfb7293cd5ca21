"""The issue's format test: the detector must not separate classes by file format.

Originals are what the classes usually look like on disk: real images as the archive's JPEG files, synthetic ones
as PNG. Re-saving the synthetic test images as JPEG (q 90) and the real ones as PNG must change each class's mean
P(synthetic) by less than 0.05.
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from deepfake_detector import score_images


def _class_means(probabilities: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    return float(probabilities[labels == 0].mean()), float(probabilities[labels == 1].mean())


@pytest.mark.slow
def test_resaving_in_the_other_format_changes_mean_probability_by_less_than_0_05(
    toy_training, toy_dataset, toy_split, isic_paths, tmp_path
):
    detector = toy_training.detector
    n_real = int((toy_dataset.labels == 0).sum())
    test = toy_split.test
    labels = toy_dataset.labels[test]
    real_sources = [isic_paths[2 * i] for i in test if i < n_real]  # real image i came from source 2i
    synthetic_images = toy_dataset.images[[i for i in test if i >= n_real]]

    originals, resaved = list(real_sources), []
    for k, image in enumerate(synthetic_images):
        Image.fromarray(image).save(tmp_path / f"synthetic_{k}.png")
        Image.fromarray(image).save(tmp_path / f"synthetic_{k}.jpg", quality=90)
        originals.append(tmp_path / f"synthetic_{k}.png")
    for k, source in enumerate(real_sources):
        with Image.open(source) as decoded:
            decoded.convert("RGB").save(tmp_path / f"real_{k}.png")
        resaved.append(tmp_path / f"real_{k}.png")
    resaved += [tmp_path / f"synthetic_{k}.jpg" for k in range(len(synthetic_images))]
    ordered_labels = np.r_[np.zeros(len(real_sources), int), np.ones(len(synthetic_images), int)]
    assert sorted(ordered_labels.tolist()) == sorted(labels.tolist())

    before = score_images(detector, originals)
    after = score_images(detector, resaved)
    # The test only means something for a detector that separates the classes in the first place.
    assert roc_auc_score(ordered_labels, before) > 0.95
    real_before, synthetic_before = _class_means(before, ordered_labels)
    real_after, synthetic_after = _class_means(after, ordered_labels)
    assert abs(real_after - real_before) < 0.05
    assert abs(synthetic_after - synthetic_before) < 0.05
