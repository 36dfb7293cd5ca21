"""Training augmentation in the spirit of Wang et al. 2020 ("CNN-generated images are surprisingly easy to spot").

Wang et al. blur (sigma ~ U[0, 3]) and JPEG re-compress (quality ~ U[30, 100]) each with probability 0.5, plus
flips and crops, at 224-256 px. Our images are 64 px, so the blur range is scaled down (a sigma of 3 at 64 px
erases almost everything); it still covers sigma = 1, the robustness check. Crops are translations of a
reflect-padded image, not resized crops: a resize would itself smooth away the upsampling artefacts we look for.

The translations are whole patches (8 px) by default. Measured (real isic-uda1 vs a 1000-step DCGAN, 20 epochs,
validation AUC): shifts of 0-4 px with flips 0.750, no flips or shifts 0.994, flips + 8-px shifts 1.000. Sub-patch
shifts change what every ViT token sees and the phase of the generator's periodic artefacts at once; the small
ViT then barely learns. 8-px steps keep the token grid aligned with the image and vary only where content sits.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepfake_detector.data import jpeg_roundtrip
from deepfake_detector.perturbations import gaussian_blur


@dataclass(frozen=True)
class WangAugmentation:
    blur_probability: float = 0.5
    blur_sigma_range: tuple[float, float] = (0.0, 1.5)
    jpeg_probability: float = 0.5
    jpeg_quality_range: tuple[int, int] = (30, 100)
    horizontal_flip: bool = True
    # Dermoscopic and clinical images have no canonical "up", so vertical flips are label-preserving too.
    vertical_flip: bool = True
    max_translation: int = 8
    translation_step: int = 8  # shifts are multiples of this; the ViT patch size keeps tokens aligned


def augment_image(image: np.ndarray, config: WangAugmentation, rng: np.random.Generator) -> np.ndarray:
    if config.horizontal_flip and rng.random() < 0.5:
        image = image[:, ::-1]
    if config.vertical_flip and rng.random() < 0.5:
        image = image[::-1]
    image = np.ascontiguousarray(image)
    if rng.random() < config.blur_probability:
        image = gaussian_blur(image, float(rng.uniform(*config.blur_sigma_range)))
    if rng.random() < config.jpeg_probability:
        low, high = config.jpeg_quality_range
        image = jpeg_roundtrip(image, int(rng.integers(low, high + 1)))
    shift, step = config.max_translation, config.translation_step
    if shift >= step > 0:
        height, width = image.shape[:2]
        padded = np.pad(image, ((shift, shift), (shift, shift), (0, 0)), mode="reflect")
        top, left = shift + step * rng.integers(-(shift // step), shift // step + 1, size=2)
        image = padded[top : top + height, left : left + width]
    return np.ascontiguousarray(image)


def augment_batch(images: np.ndarray, config: WangAugmentation, rng: np.random.Generator) -> np.ndarray:
    return np.stack([augment_image(image, config, rng) for image in images])
