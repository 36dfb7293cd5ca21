"""Scoring: any images in, calibrated P(synthetic) per image out. Always through the one preprocessing."""
from __future__ import annotations

from typing import Sequence, Union

import numpy as np
import torch

from deepfake_detector.calibration import apply_temperature
from deepfake_detector.crops import tiles
from deepfake_detector.data import ImageSource, encode_for_model, iter_chunks, standardise_images
from deepfake_detector.model import Detector, images_to_tensor

Images = Union[np.ndarray, Sequence[ImageSource]]


def logits_of_encoded(detector: Detector, encoded: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Raw logits for images that already went through both preprocessing steps (uint8 NHWC)."""
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(encoded), batch_size):
            batch = images_to_tensor(encoded[start : start + batch_size], detector.device)
            outputs.append(detector.model(batch)[:, 0].double().cpu().numpy())
    return np.concatenate(outputs) if outputs else np.zeros(0, dtype=np.float64)


def encoded_tiles(windows: Sequence[np.ndarray], preprocessing) -> tuple[np.ndarray, np.ndarray]:
    """(every window's tiles, encoded, concatenated; the number of tiles of each window)."""
    per_image = [tiles(window, preprocessing.size) for window in windows]
    counts = np.array([len(t) for t in per_image], dtype=np.int64)
    return encode_for_model(np.concatenate(per_image), preprocessing), counts


def logits_of_tiles(detector: Detector, encoded: np.ndarray, counts: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Each image's logit: the mean of its tiles' logits (tiles as `encoded_tiles` gives them)."""
    tile_logits = logits_of_encoded(detector, encoded, batch_size)
    return np.add.reduceat(tile_logits, np.r_[0, np.cumsum(counts)[:-1]]) / counts


def logits_of_windows(detector: Detector, windows: Sequence[np.ndarray], batch_size: int = 256) -> np.ndarray:
    """Native preprocessing: each window's tiles encoded and scored, the image's logit their mean."""
    if not len(windows):
        return np.zeros(0, dtype=np.float64)
    return logits_of_tiles(detector, *encoded_tiles(windows, detector.preprocessing), batch_size)


def compute_logits(detector: Detector, images: Images, batch_size: int = 256) -> np.ndarray:
    """Uncalibrated logits (log-odds of synthetic, float64) for uint8 NHWC arrays, paths, PIL images or arrays (or,
    for a native-crop detector, windows).

    Sources are decoded one batch at a time, so a long list of paths never sits in memory at once.
    """
    logits = []
    for chunk in iter_chunks(images, batch_size):
        standardised = standardise_images(chunk, detector.preprocessing)
        if detector.preprocessing.native:
            logits.append(logits_of_windows(detector, standardised, batch_size))
            continue
        encoded = encode_for_model(standardised, detector.preprocessing)
        logits.append(logits_of_encoded(detector, encoded, batch_size))
    return np.concatenate(logits) if logits else np.zeros(0, dtype=np.float64)


def score_images(detector: Detector, images: Images, batch_size: int = 256, calibrated: bool = True) -> np.ndarray:
    """P(synthetic) per image (float64), temperature-scaled unless ``calibrated=False``."""
    logits = compute_logits(detector, images, batch_size)
    return apply_temperature(logits, detector.temperature if calibrated else 1.0)
