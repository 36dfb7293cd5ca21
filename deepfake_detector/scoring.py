"""Scoring: any images in, calibrated P(synthetic) per image out. Always through the one preprocessing."""
from __future__ import annotations

from typing import Sequence, Union

import numpy as np
import torch

from deepfake_detector.calibration import apply_temperature
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


def compute_logits(detector: Detector, images: Images, batch_size: int = 256) -> np.ndarray:
    """Uncalibrated logits (log-odds of synthetic, float64) for uint8 NHWC arrays, paths, PIL images or arrays.

    Sources are decoded one batch at a time, so a long list of paths never sits in memory at once.
    """
    logits = []
    for chunk in iter_chunks(images, batch_size):
        standardised = standardise_images(chunk, detector.preprocessing)
        encoded = encode_for_model(standardised, detector.preprocessing)
        logits.append(logits_of_encoded(detector, encoded, batch_size))
    return np.concatenate(logits) if logits else np.zeros(0, dtype=np.float64)


def score_images(detector: Detector, images: Images, batch_size: int = 256, calibrated: bool = True) -> np.ndarray:
    """P(synthetic) per image (float64), temperature-scaled unless ``calibrated=False``."""
    logits = compute_logits(detector, images, batch_size)
    return apply_temperature(logits, detector.temperature if calibrated else 1.0)
