"""ITA phototype estimation on rendered images of known CIELAB skin colour, and its refusals."""
from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from skimage.color import lab2rgb, rgb2lab

from metrics.phototype import (
    ITA_TO_FITZPATRICK,
    PhototypeEstimate,
    coerce_fitzpatrick,
    estimate_phototype,
    estimate_phototypes,
    individual_typology_angle,
    ita_to_fitzpatrick,
    shades_of_gray,
)

SIZE = 512
# One skin colour per type, ITA at the middle of the type's range (VI: a realistic dark skin).
TARGET_ITA = {1: 65.0, 2: 48.0, 3: 34.5, 4: 23.5, 5: 14.5, 6: -30.0}
SKIN_A, SKIN_B = 11.0, 16.0


def skin_lightness(ita_deg: float, b_star: float = SKIN_B) -> float:
    return 50.0 + b_star * math.tan(math.radians(ita_deg))


@functools.lru_cache(maxsize=None)
def _grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    return yy, xx, np.hypot(yy - SIZE / 2, xx - SIZE / 2)


@functools.lru_cache(maxsize=None)
def _hair_weights(n_hairs: int, seed: int) -> np.ndarray:
    """Coverage of n_hairs straight dark strokes, ~3 px wide, each drawn over the previous ones."""
    yy, xx, _ = _grid()
    rng = np.random.default_rng(seed)
    weights = np.zeros((SIZE, SIZE))
    for _ in range(n_hairs):
        x0, y0 = rng.uniform(0, SIZE, 2)
        angle = rng.uniform(0, math.pi)
        stroke = np.clip(1.5 - np.abs((xx - x0) * math.sin(angle) - (yy - y0) * math.cos(angle)), 0, 1)
        weights = weights + stroke * (1 - weights)
    return weights


@functools.lru_cache(maxsize=None)
def _specular_weights(n_spots: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 1000)
    weights = np.zeros((SIZE, SIZE))
    for y0, x0 in rng.uniform(8, SIZE - 8, size=(n_spots, 2)).astype(int):
        yy, xx = np.mgrid[y0 - 6 : y0 + 7, x0 - 6 : x0 + 7]
        spot = np.clip(4 - np.hypot(yy - y0, xx - x0), 0, 1)
        weights[y0 - 6 : y0 + 7, x0 - 6 : x0 + 7] = np.maximum(weights[y0 - 6 : y0 + 7, x0 - 6 : x0 + 7], spot)
    return weights


def render_skin(
    ita_deg: float,
    *,
    lesion: float = 0.0,
    hair: int = 0,
    frame: bool = False,
    specular: int = 0,
    shading: bool = False,
    b_star: float = SKIN_B,
    a_star: float = SKIN_A,
    seed: int = 0,
) -> np.ndarray:
    """A 512-px sRGB image of skin of exactly this CIELAB colour, with anti-aliased artefacts.

    lesion: radius of a dark brown lesion as a fraction of the size; hair: number of dark strokes; specular: number
    of white highlights; frame: a dermoscope's black frame with a vignetted rim; shading: +-6 L* left to right.
    """
    _, _, radius = _grid()
    lab = np.empty((SIZE, SIZE, 3))
    lab[...] = (skin_lightness(ita_deg, b_star), a_star, b_star)

    def paint(weight: np.ndarray, colour) -> None:
        lab[...] = lab * (1 - weight[..., None]) + np.asarray(colour, dtype=np.float64) * weight[..., None]

    if shading:  # centred on the true colour, so the true ITA is the median
        lab[..., 0] += np.linspace(-6.0, 6.0, SIZE)[None, :]
    if lesion:
        paint(np.clip((lesion * SIZE - radius) / 4, 0, 1), (max(lab[0, 0, 0] - 30, 12.0), 16.0, 22.0))
    if hair:
        paint(_hair_weights(hair, seed), (10.0, 2.0, 3.0))
    if specular:
        paint(_specular_weights(specular, seed), (99.0, 0.0, 0.0))
    if frame:
        lab[..., 0] *= 1 - 0.6 * np.clip((radius - 0.38 * SIZE) / (0.04 * SIZE), 0, 1)
    rgb = np.round(np.clip(lab2rgb(lab), 0, 1) * 255).astype(np.uint8)
    if frame:
        rgb[radius > 0.42 * SIZE] = 0
    return rgb


# Each artefact alone is heavy (a lesion over a third of the image, 60 hairs); together they are kept realistic,
# because together at full strength they leave almost no skin (tested separately below).
ARTEFACTS = {
    "clean": {},
    "lesion": {"lesion": 0.32},
    "hair": {"hair": 60},
    "frame": {"frame": True},
    "specular": {"specular": 80},
    "shading": {"shading": True},
    "all": {"lesion": 0.2, "hair": 25, "frame": True, "specular": 40, "shading": True},
}


@pytest.mark.parametrize("artefact", list(ARTEFACTS))
@pytest.mark.parametrize("fitzpatrick", list(TARGET_ITA))
def test_rendered_skin_recovers_ita_within_2_degrees_and_the_type(fitzpatrick, artefact):
    ita = TARGET_ITA[fitzpatrick]
    estimate = estimate_phototype(render_skin(ita, **ARTEFACTS[artefact]))
    assert estimate.undetermined_reason is None
    assert abs(estimate.ita_deg - ita) <= 2.0
    assert estimate.fitzpatrick == fitzpatrick
    assert estimate.skin_pixels > 1000


@pytest.mark.parametrize("fitzpatrick", [1, 3, 6])
def test_small_generated_images_are_measured_too(fitzpatrick):
    # Baseline GANs produce 64-px images: 4,096 pixels, a third of them lesion.
    from PIL import Image

    ita = TARGET_ITA[fitzpatrick]
    small = Image.fromarray(render_skin(ita, lesion=0.3, hair=20)).resize((64, 64), Image.Resampling.BOX)
    estimate = estimate_phototype(np.asarray(small))
    assert abs(estimate.ita_deg - ita) <= 2.0 and estimate.fitzpatrick == fitzpatrick


def test_a_lesion_filling_the_dermoscope_leaves_too_few_skin_pixels_rather_than_a_wrong_type():
    heavy = render_skin(TARGET_ITA[3], lesion=0.34, hair=60, frame=True, specular=80, shading=True)
    estimate = estimate_phototype(heavy)
    assert estimate.fitzpatrick is None
    assert estimate.undetermined_reason.startswith("too few skin pixels")


def _naive_ita(rgb: np.ndarray) -> float:
    lab = rgb2lab(rgb).reshape(-1, 3)
    return float(np.median(individual_typology_angle(lab[:, 0], lab[:, 2])))


@pytest.mark.parametrize("fitzpatrick", [2, 3, 6])
def test_artefacts_would_bias_an_unmasked_median(fitzpatrick):
    # Shows the rendered cases are hard: without the masks the same image is mistyped or off by several degrees.
    ita = TARGET_ITA[fitzpatrick]
    assert abs(_naive_ita(render_skin(ita, **ARTEFACTS["all"])) - ita) > 2.0


def test_blue_colour_cast_is_undetermined_not_type_i():
    cast = render_skin(80.0, b_star=-6.0, a_star=2.0, lesion=0.2)  # ITA of the raw pixels would be ~ 100 degrees
    estimate = estimate_phototype(cast)
    assert estimate.fitzpatrick is None and estimate.ita_deg is None
    assert "b*" in estimate.undetermined_reason
    assert estimate.median_lab[2] < 0  # the measured colour is kept, for inspection and for learned estimators


def test_grey_image_is_undetermined():
    grey = np.full((256, 256, 3), 150, dtype=np.uint8)
    estimate = estimate_phototype(grey)
    assert estimate.fitzpatrick is None and "chroma" in estimate.undetermined_reason


def test_image_without_enough_skin_is_undetermined():
    rgb = render_skin(34.5)
    rgb[:, :] = 0  # almost everything is black frame ...
    rgb[240:260, 240:260] = render_skin(34.5)[240:260, 240:260]  # ... around a 20 x 20 patch of skin
    estimate = estimate_phototype(rgb)
    assert estimate.fitzpatrick is None
    assert estimate.undetermined_reason.startswith("too few skin pixels")


@pytest.mark.parametrize(
    ("ita", "expected"),
    [(90.0, 1), (55.01, 1), (55.0, 2), (41.01, 2), (41.0, 3), (28.01, 3), (28.0, 4), (19.01, 4), (19.0, 5),
     (10.01, 5), (10.0, 6), (-60.0, 6)],
)
def test_ita_thresholds_follow_kinyanjui_with_boundaries_going_to_the_darker_type(ita, expected):
    assert ita_to_fitzpatrick(ita) == expected


def test_threshold_table_is_the_published_one():
    assert [bound for bound, _ in ITA_TO_FITZPATRICK[:-1]] == [55, 41, 28, 19, 10]
    assert [t for _, t in ITA_TO_FITZPATRICK] == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError):
        ita_to_fitzpatrick(float("nan"))


def test_individual_typology_angle_matches_its_definition():
    assert individual_typology_angle(50.0, 20.0) == pytest.approx(0.0)
    assert individual_typology_angle(70.0, 20.0) == pytest.approx(45.0)
    assert individual_typology_angle(30.0, 20.0) == pytest.approx(-45.0)


def test_shades_of_gray_removes_a_colour_cast_from_a_grey_world():
    rng = np.random.default_rng(1)
    scene = rng.uniform(0.05, 0.6, size=(64, 64, 1)) * np.ones(3)  # achromatic scene in linear RGB
    tinted = np.clip(scene * np.array([0.7, 0.85, 1.3]), 0, 1)  # bluish light
    srgb = np.where(tinted <= 0.0031308, 12.92 * tinted, 1.055 * tinted ** (1 / 2.4) - 0.055)
    corrected = shades_of_gray(np.round(srgb * 255).astype(np.uint8))
    lab = rgb2lab(corrected)
    assert np.abs(lab[..., 1:]).mean() < 1.0  # chroma back to ~0
    assert np.abs(rgb2lab(np.round(srgb * 255).astype(np.uint8))[..., 2]).mean() > 5  # it was visibly cast


def test_colour_constancy_is_recorded_in_the_method_and_reason():
    estimate = estimate_phototype(render_skin(34.5), colour_constancy=True)
    assert estimate.method.startswith("ita+shades-of-gray")
    # A photo that is all skin has no grey to balance against: the correction greys the skin itself.
    assert estimate.fitzpatrick is None and "after Shades-of-Gray" in estimate.undetermined_reason


def test_batch_matches_single_and_round_trips(tmp_path):
    from PIL import Image

    images = [render_skin(TARGET_ITA[t], lesion=0.2) for t in (1, 4)]
    path = tmp_path / "skin.png"
    Image.fromarray(images[1]).save(path)
    batch = estimate_phototypes([images[0], path])
    assert batch == [estimate_phototype(images[0]), estimate_phototype(images[1])]
    assert PhototypeEstimate.from_dict(batch[1].to_dict()) == batch[1]
    assert estimate_phototypes([images[0], path], n_workers=2) == batch
    assert estimate_phototypes([images[0], path], n_threads=2) == batch


def test_coerce_fitzpatrick_accepts_the_usual_spellings():
    assert [coerce_fitzpatrick(v) for v in (3, 3.0, "III", "iv", None, float("nan"), "", "undetermined")] == [
        3, 3, 3, 4, None, None, None, None,
    ]
    with pytest.raises(ValueError):
        coerce_fitzpatrick(7)
