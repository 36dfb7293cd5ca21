"""Fitzpatrick phototype estimated from a skin photograph via the Individual Typology Angle (ITA).

ITA = atan2(L* - 50, b*) * 180 / pi, in CIELAB (sRGB, D65), measured on healthy skin only (see phototype_masks).
It is a colour measurement: white balance, dermoscope light and colour casts move it by tens of degrees, so every
estimate says how many skin pixels it used and is "undetermined", with the reason, whenever the skin it measured is
implausible. Whether ITA agrees with dermatologists on a given kind of data is a separate, measured question:
see phototype_validation. Related modules: phototype_learned (a trained estimator), phototype_balance (scoring a
set's distribution against a target).

    >>> estimate = estimate_phototype("lesion.jpg")
    >>> estimate.fitzpatrick, estimate.ita_deg, estimate.undetermined_reason
"""
from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image
from skimage.color import rgb2lab

from metrics.phototype_masks import SkinMaskSettings, compute_skin_masks

ImageInput = Union[np.ndarray, str, os.PathLike, Image.Image]

FITZPATRICK_TYPES: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
FITZPATRICK_NAMES: dict[int, str] = {1: "I", 2: "II", 3: "III", 4: "IV", 5: "V", 6: "VI"}

# ITA (degrees) -> Fitzpatrick type: type t when ITA > its lower bound, checked from type I down.
# Source: Kinyanjui N.M. et al., "Fairness of Classifiers Across Skin Tones in Dermatology", MICCAI 2020
# (LNCS 12266, 320-329), who split the ITA skin-colour categories of Del Bino S. & Bernerd F.,
# Br J Dermatol 2013;169 Suppl 3:33-40 (very light > 55 > light > 41 > intermediate > 28 > tan > 10 > brown/dark)
# into I > 55, II 41-55, III 28-41, IV 19-28, V 10-19, VI <= 10. A value on a boundary belongs to the darker type
# (55 -> II, 10 -> VI), consistent with "> 55" for I and "<= 10" for VI.
ITA_TO_FITZPATRICK: tuple[tuple[float, int], ...] = (
    (55.0, 1),
    (41.0, 2),
    (28.0, 3),
    (19.0, 4),
    (10.0, 5),
    (-math.inf, 6),
)

ITA_METHOD = "ita/v1"
# Longest side the image is area-downsampled to before measuring: ITA is a colour statistic of thousands of pixels,
# and at 192 px the rendered-image tests stay within 1 degree while throughput meets the 50 images/s target.
DEFAULT_ANALYSIS_SIZE = 192
ITA_SHADES_OF_GRAY_METHOD = "ita+shades-of-gray/v1"


def ita_to_fitzpatrick(ita_deg: float) -> int:
    """Fitzpatrick type (1-6) for an ITA in degrees, by ITA_TO_FITZPATRICK."""
    if not math.isfinite(ita_deg):
        raise ValueError(f"ITA must be finite, got {ita_deg}")
    for lower_bound, fitzpatrick in ITA_TO_FITZPATRICK:
        if ita_deg > lower_bound:
            return fitzpatrick
    raise AssertionError("unreachable: the last lower bound is -inf")


def json_safe(value: object) -> object:
    """`value` with tuples as lists and NaN/infinite floats as None: PostgreSQL's jsonb (and strict JSON) reject them.

    Results that can be infinite (a KL divergence against a target that excludes a type) say so in their warnings.
    """
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def individual_typology_angle(lightness: np.ndarray, b_star: np.ndarray) -> np.ndarray:
    """ITA in degrees, element-wise."""
    return np.degrees(np.arctan2(np.asarray(lightness, dtype=np.float64) - 50.0, np.asarray(b_star, dtype=np.float64)))


@dataclass(frozen=True)
class PhototypeEstimate:
    """One image's phototype estimate; `fitzpatrick` and `ita_deg` are None exactly when undetermined."""

    fitzpatrick: int | None
    ita_deg: float | None
    skin_pixels: int
    undetermined_reason: str | None
    method: str
    # Share of the analysed pixels that counted as skin, and their median CIELAB colour (None without skin pixels).
    skin_fraction: float = 0.0
    median_lab: tuple[float, float, float] | None = None
    analysed_pixels: int = 0

    @property
    def determined(self) -> bool:
        return self.fitzpatrick is not None

    def to_dict(self) -> dict:
        return json_safe(asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> PhototypeEstimate:
        values = dict(data)
        if values.get("median_lab") is not None:
            values["median_lab"] = tuple(values["median_lab"])
        return cls(**values)


def coerce_fitzpatrick(value: object) -> int | None:
    """A type 1-6 from an int/float/roman numeral/PhototypeEstimate; None for missing or undetermined values."""
    if value is None:
        return None
    if isinstance(value, PhototypeEstimate):
        return value.fitzpatrick
    if isinstance(value, str):
        text = value.strip().upper()
        if text in ("", "NAN", "NONE", "UNDETERMINED", "UNKNOWN"):
            return None
        by_name = {name: number for number, name in FITZPATRICK_NAMES.items()}
        if text in by_name:
            return by_name[text]
        value = float(text)
    number = float(value)  # type: ignore[arg-type]
    if math.isnan(number):
        return None
    if number not in FITZPATRICK_TYPES:
        raise ValueError(f"not a Fitzpatrick type (1-6): {value!r}")
    return int(number)


@dataclass(frozen=True)
class PlausibilitySettings:
    """When the measured skin cannot be trusted as skin colour, the estimate is undetermined instead of typed."""

    # Absolute floor so that small images (64-px GAN outputs: 4,096 pixels) can still be measured.
    min_skin_pixels: int = 200
    min_skin_fraction: float = 0.05
    # Skin is yellow-red: median b* below this means a blue/grey colour cast (and an ITA near or above 90 degrees).
    min_median_b_star: float = 0.0
    # Real skin has clearly measurable chroma; below this the image is (nearly) grey or heavily desaturated.
    min_median_chroma: float = 5.0
    max_abs_ita_deg: float = 90.0


def load_rgb(image: ImageInput, analysis_size: int | None = DEFAULT_ANALYSIS_SIZE) -> np.ndarray:
    """Decode to sRGB uint8 (H, W, 3), area-downsampled so the longest side is at most `analysis_size`."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected a uint8 H x W x 3 sRGB array, got {image.dtype} {image.shape}")
        if analysis_size is None or max(image.shape[:2]) <= analysis_size:
            return image
        pil = Image.fromarray(image)
    elif isinstance(image, Image.Image):
        pil = image
    else:
        pil = Image.open(Path(image))
        if analysis_size is not None:
            pil.draft("RGB", (analysis_size, analysis_size))  # JPEG: decode at a reduced scale, much faster
    pil = pil.convert("RGB")
    if analysis_size is not None and max(pil.size) > analysis_size:
        scale = analysis_size / max(pil.size)
        size = (max(1, round(pil.width * scale)), max(1, round(pil.height * scale)))
        pil = pil.resize(size, Image.Resampling.BOX)
    return np.asarray(pil)


def shades_of_gray(rgb: np.ndarray, power: float = 6.0) -> np.ndarray:
    """Shades-of-Gray colour constancy (Finlayson & Trezzi 2004; p = 6 as in Barata et al. 2015 for dermoscopy).

    The illuminant is the Minkowski p-mean of each channel, estimated and divided out in linear RGB (a von Kries
    correction is a model of the light, which adds in linear space), scaled so that a grey illuminant is unchanged.
    Note that it assumes the scene averages to grey; a photo that is mostly skin does not, so it also pulls the skin
    itself towards grey. Whether it helps ITA is measured in benchmarks/phototype.py, not assumed.
    """
    srgb = rgb.astype(np.float64) / 255.0
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    illuminant = np.power(np.mean(np.power(linear.reshape(-1, 3), power), axis=0), 1.0 / power)
    norm = np.linalg.norm(illuminant)
    if norm == 0:
        return rgb.copy()
    gains = (norm / math.sqrt(3.0)) / np.maximum(illuminant, 1e-12)
    corrected = np.clip(linear * gains, 0.0, 1.0)
    encoded = np.where(corrected <= 0.0031308, corrected * 12.92, 1.055 * corrected ** (1 / 2.4) - 0.055)
    return np.round(encoded * 255.0).astype(np.uint8)


def _undetermined(reason: str, method: str, skin_pixels: int, analysed: int, median_lab=None) -> PhototypeEstimate:
    fraction = skin_pixels / analysed if analysed else 0.0
    return PhototypeEstimate(None, None, skin_pixels, reason, method, fraction, median_lab, analysed)


def estimate_phototype(
    image: ImageInput,
    *,
    colour_constancy: bool = False,
    analysis_size: int | None = DEFAULT_ANALYSIS_SIZE,
    mask_settings: SkinMaskSettings | None = None,
    plausibility: PlausibilitySettings | None = None,
) -> PhototypeEstimate:
    """ITA-based Fitzpatrick estimate of one image (uint8 H x W x 3 sRGB array, PIL image or path)."""
    plausibility = plausibility or PlausibilitySettings()
    method = ITA_SHADES_OF_GRAY_METHOD if colour_constancy else ITA_METHOD
    # The correction itself can grey the skin out; a reader must know the cast was measured after it.
    after = " after Shades-of-Gray correction" if colour_constancy else ""
    rgb = load_rgb(image, analysis_size)
    if colour_constancy:
        rgb = shades_of_gray(rgb)
    lab = rgb2lab(rgb.astype(np.float32) / 255.0)  # float32 halves the cost; error << 0.01 ITA degrees
    masks = compute_skin_masks(rgb, lab, mask_settings)
    skin = lab[masks.skin].astype(np.float64)
    analysed = masks.skin.size
    count = len(skin)
    if count < max(plausibility.min_skin_pixels, plausibility.min_skin_fraction * analysed):
        return _undetermined(
            f"too few skin pixels: {count} of {analysed} remain after removing lesion, hair, frame and highlights",
            method, count, analysed,
        )

    median_lab = tuple(float(v) for v in np.median(skin, axis=0))
    _, median_a, median_b = median_lab
    if median_b < plausibility.min_median_b_star:
        return _undetermined(
            f"colour cast{after}: median b* of skin pixels is {median_b:.1f} "
            f"(< {plausibility.min_median_b_star:g}); skin is never blue", method, count, analysed, median_lab,
        )
    chroma = math.hypot(median_a, median_b)
    if chroma < plausibility.min_median_chroma:
        return _undetermined(
            f"colour cast{after}: median skin chroma {chroma:.1f} (< {plausibility.min_median_chroma:g}); "
            "image is grey or desaturated", method, count, analysed, median_lab,
        )
    ita = float(np.median(individual_typology_angle(skin[:, 0], skin[:, 2])))
    if abs(ita) > plausibility.max_abs_ita_deg:
        return _undetermined(
            f"implausible ITA {ita:.1f} degrees (|ITA| > {plausibility.max_abs_ita_deg:g})",
            method, count, analysed, median_lab,
        )
    return PhototypeEstimate(ita_to_fitzpatrick(ita), ita, count, None, method, count / analysed, median_lab, analysed)


def _estimate_one(args: tuple) -> PhototypeEstimate:
    image, kwargs = args
    return estimate_phototype(image, **kwargs)


def estimate_phototypes(
    images: Sequence[ImageInput],
    *,
    n_workers: int = 1,
    n_threads: int = 1,
    colour_constancy: bool = False,
    analysis_size: int | None = DEFAULT_ANALYSIS_SIZE,
    mask_settings: SkinMaskSettings | None = None,
    plausibility: PlausibilitySettings | None = None,
) -> list[PhototypeEstimate]:
    """estimate_phototype over many images, in input order; `n_workers` > 1 uses that many processes, `n_threads` > 1
    that many threads (decoding and most of numpy release the GIL: 1.6x on 2 cores, measured on isic-uda1).

    Worker processes are forked (a spawned worker pays seconds of imports, more than a few hundred images take).
    Inside a Celery prefork worker, which may not have children, or in a process running torch threads, keep
    n_workers=1 and parallelise across tasks instead.
    """
    kwargs = dict(
        colour_constancy=colour_constancy,
        analysis_size=analysis_size,
        mask_settings=mask_settings,
        plausibility=plausibility,
    )
    jobs = [(image, kwargs) for image in images]
    if len(jobs) < 2 or (n_workers <= 1 and n_threads <= 1):
        return [_estimate_one(job) for job in jobs]
    if n_workers <= 1:
        with ThreadPoolExecutor(max_workers=n_threads) as threads:
            return list(threads.map(_estimate_one, jobs))
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    with ProcessPoolExecutor(max_workers=n_workers, mp_context=context) as pool:
        return list(pool.map(_estimate_one, jobs, chunksize=max(1, len(jobs) // (4 * n_workers))))
