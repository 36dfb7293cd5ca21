"""Which pixels of a skin photograph show healthy skin: the mask the ITA estimate is measured on.

The Individual Typology Angle is only meaningful on healthy, evenly lit skin. Everything else that a dermoscopic or
clinical photo contains pulls it off: the lesion (darker, often browner), hair and pen marks (dark, thin), the black
frame and vignetted rim of a dermoscope, specular highlights (white, channel-clipped). This module removes them,
in this order, on a CIELAB image:

1. frame: very dark regions connected to the image border (after an opening, so that hairs running into the frame
   do not connect the interior to it), grown by a margin that swallows the vignetted rim;
2. specular: near-white or channel-clipped pixels (a clipped channel has lost the true colour), grown by a pixel;
3. hair, pen marks, ruler ticks: morphological black-hat on L* (thin structures darker than their surroundings);
4. lesion: colour distance (CIE76 dE, L* down-weighted) of every remaining pixel to the median colour of the skin
   in a narrow band just inside the image edge or frame; Otsu splits the distances into "like the border" and
   "unlike the border", but only distances above a floor count as lesion, so that a lesion-free image is not cut in
   half by texture or shading. Hairs crossing the lesion are bridged, specks removed, and the lesion is grown by a
   margin (its halo).
What remains is skin. Not handled: light-coloured pen marks or rulers that are neither thin-and-dark nor near-white,
and lesions that fill the whole border band (then the lesion is taken for skin). A white-balance cast is not a
masking problem: phototype.py refuses implausible skin colours instead.

Sizes are fractions of the image's longest side so that the same settings work at any analysis resolution.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage import filters, morphology, segmentation


@dataclass(frozen=True)
class SkinMaskSettings:
    # A dermoscope's frame is (near) black; very dark skin (type VI) sits around L* 25-40, so 15 keeps it.
    frame_max_lightness: float = 15.0
    frame_min_width_fraction: float = 0.01  # narrower dark structures (hairs) are not frame
    frame_margin_fraction: float = 0.05  # dermoscope vignetting darkens a rim inside the frame
    # Pale skin (type I) reaches L* ~75-85 under a dermoscope; highlights are near-white or clip a channel.
    specular_min_lightness: float = 90.0
    specular_max_chroma: float = 12.0
    clipped_channel_value: int = 250
    specular_margin_px: int = 1
    # The black-hat window must be wider than a hair (a few pixels at 192 px) and narrower than a lesion.
    hair_window_fraction: float = 0.035
    hair_min_contrast: float = 6.0
    hair_margin_px: int = 1
    # "Border skin" is the band within this fraction of the longest side from the image edge or the frame.
    border_band_fraction: float = 0.05
    # Distances below this never count as lesion (skin texture stays within it on healthy skin). Lightness counts
    # at this weight in the distance: uneven lighting moves L* far more than a*/b*, a lesion moves all three.
    lesion_min_delta_e: float = 10.0
    lesion_lightness_weight: float = 0.5
    lesion_margin_fraction: float = 0.02
    lesion_min_area_fraction: float = 0.002
    lesion_bridge_px: int = 3


@dataclass
class SkinMasks:
    """Boolean masks at analysis resolution; `skin` is what remains after removing all the others."""

    frame: np.ndarray
    specular: np.ndarray
    hair: np.ndarray
    lesion: np.ndarray
    skin: np.ndarray
    border_reference_lab: tuple[float, float, float] | None


def _pixels(fraction: float, longest_side: int, minimum: int = 1) -> int:
    return max(minimum, int(round(fraction * longest_side)))


def _grow(mask: np.ndarray, radius: int) -> np.ndarray:
    if radius <= 0 or not mask.any():
        return mask
    if radius <= 2:
        return morphology.dilation(mask, morphology.disk(radius, dtype=bool))
    # Same result as dilating with disk(radius), but its cost does not grow with the radius.
    return ndimage.distance_transform_edt(~mask) <= radius


def frame_mask(lightness: np.ndarray, settings: SkinMaskSettings) -> np.ndarray:
    dark = lightness < settings.frame_max_lightness
    # Thin dark structures (hairs running into the frame) must not connect the interior to the frame: open first.
    width = _pixels(settings.frame_min_width_fraction, max(lightness.shape), 1)
    dark = morphology.opening(dark, morphology.footprint_rectangle((2 * width + 1, 2 * width + 1)).astype(bool))
    # Dark regions that touch the border are frame; dark regions inside the image (a lesion core) are not.
    frame = dark & ~segmentation.clear_border(dark)
    return _grow(frame, _pixels(settings.frame_margin_fraction, max(lightness.shape), 0))


def specular_mask(
    rgb: np.ndarray, lightness: np.ndarray, chroma: np.ndarray, settings: SkinMaskSettings
) -> np.ndarray:
    clipped = (rgb >= settings.clipped_channel_value).any(axis=-1)
    near_white = (lightness > settings.specular_min_lightness) & (chroma < settings.specular_max_chroma)
    return _grow(clipped | near_white, settings.specular_margin_px)


def hair_mask(lightness: np.ndarray, settings: SkinMaskSettings) -> np.ndarray:
    side = _pixels(settings.hair_window_fraction, max(lightness.shape), 3) | 1  # odd window
    # A separable square window is ~2x faster than a disk and finds strokes of any direction equally well.
    window = morphology.footprint_rectangle((side, side), decomposition="separable")
    contrast = morphology.black_tophat(lightness, window)
    return _grow(contrast > settings.hair_min_contrast, settings.hair_margin_px)


def border_band(excluded: np.ndarray, settings: SkinMaskSettings) -> np.ndarray:
    """Pixels within the band next to the image edge or to an excluded frame."""
    band = _pixels(settings.border_band_fraction, max(excluded.shape), 2)
    inside = np.pad(~excluded, 1, constant_values=False)
    # Distance to the nearest pixel outside the image or frame, on a 2x subsample: accurate to a pixel or two, which
    # a band of ~10 pixels tolerates, at a quarter of the cost.
    distance = ndimage.distance_transform_edt(inside[::2, ::2]) * 2
    height, width = excluded.shape
    distance = np.repeat(np.repeat(distance, 2, axis=0), 2, axis=1)[1 : height + 1, 1 : width + 1]
    return (distance <= band) & ~excluded


def lesion_mask(
    lab: np.ndarray, candidates: np.ndarray, within: np.ndarray, reference: np.ndarray, settings: SkinMaskSettings
) -> np.ndarray:
    weights = np.array([settings.lesion_lightness_weight, 1.0, 1.0], dtype=lab.dtype)
    distance = np.linalg.norm((lab - reference) * weights, axis=-1)
    values = distance[candidates]
    if values.size < 2 or np.ptp(values) == 0:
        return np.zeros_like(candidates)
    threshold = max(filters.threshold_otsu(values), settings.lesion_min_delta_e)
    lesion = candidates & (distance > threshold)
    # Hairs and highlights crossing a lesion must not cut it into fragments small enough to be discarded as noise:
    # excluded pixels next to lesion pixels join the lesion (but hair running through healthy skin does not).
    gaps = within & ~candidates
    lesion |= gaps & _grow(lesion, settings.lesion_bridge_px)
    longest = max(candidates.shape)
    lesion = morphology.opening(lesion, morphology.disk(1, dtype=bool))
    min_area = int(settings.lesion_min_area_fraction * candidates.size)
    lesion = morphology.remove_small_objects(lesion, max_size=min_area)
    return _grow(lesion, _pixels(settings.lesion_margin_fraction, longest, 0))


def compute_skin_masks(rgb: np.ndarray, lab: np.ndarray, settings: SkinMaskSettings | None = None) -> SkinMasks:
    """Masks for an sRGB uint8 image `rgb` (H, W, 3) and its CIELAB conversion `lab` (same H, W)."""
    settings = settings or SkinMaskSettings()
    lightness = lab[..., 0]
    frame = frame_mask(lightness, settings)
    chroma = np.hypot(lab[..., 1], lab[..., 2])
    specular = specular_mask(rgb, lightness, chroma, settings) & ~frame
    hair = hair_mask(lightness, settings) & ~frame
    candidates = ~(frame | specular | hair)

    band = border_band(frame, settings) & candidates
    if band.sum() < 16:
        # Without border skin to compare with, lesion and skin cannot be told apart: measure nothing.
        nothing = np.zeros_like(candidates)
        return SkinMasks(frame, specular, hair, nothing, nothing, None)
    reference = np.median(lab[band], axis=0)
    lesion = lesion_mask(lab, candidates, ~frame, reference, settings)
    skin = candidates & ~lesion
    return SkinMasks(frame, specular, hair, lesion, skin, tuple(float(v) for v in reference))
