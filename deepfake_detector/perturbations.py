"""Image degradations shared by training augmentation and the robustness evaluation (uint8 HxWx3 in and out).

Keeping them in one place means the robustness numbers test exactly the operations that are named in the report.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from deepfake_detector.data import jpeg_roundtrip

Perturbation = Callable[[np.ndarray], np.ndarray]


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Exact Gaussian blur (scipy, reflect border, truncated at 4 sigma) with ``sigma`` in pixels."""
    if sigma <= 0:
        return image
    blurred = gaussian_filter(image.astype(np.float32), sigma=(sigma, sigma, 0), mode="reflect", truncate=4.0)
    return np.clip(np.rint(blurred), 0, 255).astype(np.uint8)


def down_up_resize(image: np.ndarray, factor: float = 0.5) -> np.ndarray:
    """Downscale by ``factor`` and back up to the original size, both with Pillow's bicubic filter."""
    height, width = image.shape[:2]
    small_size = (max(1, round(width * factor)), max(1, round(height * factor)))
    small = Image.fromarray(image).resize(small_size, Image.Resampling.BICUBIC)
    return np.asarray(small.resize((width, height), Image.Resampling.BICUBIC), dtype=np.uint8).copy()


UPSAMPLING_MODES = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
                    "bicubic": Image.Resampling.BICUBIC}


def upsampling_trace(image: np.ndarray, mode: str = "bilinear") -> np.ndarray:
    """The trace of a generator that renders at half size and upsamples 2x: the image at half its size (Lanczos,
    antialiased), then twice as large again through `mode` (nearest, bilinear or bicubic), cropped to even sides.
    Applied to held-out real images it makes a set whose answer is known — real content, a generator's trace —
    the hard positive control of pixel-level detectability."""
    height, width = (image.shape[0] // 2) * 2, (image.shape[1] // 2) * 2
    small = Image.fromarray(image[:height, :width]).resize((width // 2, height // 2), Image.Resampling.LANCZOS)
    return np.asarray(small.resize((width, height), UPSAMPLING_MODES[mode]), dtype=np.uint8).copy()


def apply_to_batch(images: np.ndarray, perturbation: Perturbation) -> np.ndarray:
    return np.stack([perturbation(image) for image in images]) if len(images) else images


# The three degradations the issue asks the detector to survive, with their parameters in the name.
ROBUSTNESS_PERTURBATIONS: dict[str, Perturbation] = {
    "jpeg_q75": lambda image: jpeg_roundtrip(image, 75),
    "gaussian_blur_sigma1": lambda image: gaussian_blur(image, 1.0),
    "resize_0.5x_down_up": lambda image: down_up_resize(image, 0.5),
}
