"""Copy detection on real images: transformed copies of training images are found (and attributed to their source),
different real lesions and another clinic's photos are not, exact copies score at the maximum, every transform
alone is caught, everything is deterministic for a seed, and bad input is refused with a clear message."""
from __future__ import annotations

import json

import numpy as np
import pytest

from metrics.copy_detection import (
    DEFAULT_THRESHOLD,
    TRANSFORM_KINDS,
    CopyDetector,
    calibrate_copy_detector,
    calibrate_from_matches,
    compute_copy_rate,
    conformal_threshold,
    make_transformed_copies,
)
from metrics.image_io import open_rgb
from metrics.results import InsufficientSamplesError

N_TRAINING = 60  # isic-uda1 rows 0-59 (no known duplicate pair inside rows 0-209)
N_HELD_OUT = 150  # isic-uda1 rows 60-209: other lesions
N_PAD = 100


@pytest.fixture(scope="module")
def isic_images(isic_paths) -> list[np.ndarray]:
    return [np.asarray(open_rgb(path)) for path in isic_paths[: N_TRAINING + N_HELD_OUT]]


@pytest.fixture(scope="module")
def training(isic_images) -> list[np.ndarray]:
    return isic_images[:N_TRAINING]


@pytest.fixture(scope="module")
def held_out(isic_images) -> list[np.ndarray]:
    return isic_images[N_TRAINING:]


@pytest.fixture(scope="module")
def pad_images(pad_paths) -> list[np.ndarray]:
    return [np.asarray(open_rgb(path)) for path in pad_paths[:N_PAD]]


@pytest.fixture(scope="module")
def detector() -> CopyDetector:
    return CopyDetector()


@pytest.fixture(scope="module")
def index(detector, training):
    return detector.index(training)


def detected(matches, copies) -> np.ndarray:
    sources = np.array([copy.source_index for copy in copies])
    return matches.is_copy & (matches.training_index == sources)


@pytest.fixture(scope="module")
def copies(training):
    return make_transformed_copies(training, seed=3, copies_per_image=2)


@pytest.fixture(scope="module")
def copy_matches(detector, index, copies):
    return detector.match([copy.image for copy in copies], index)


@pytest.fixture(scope="module")
def held_out_matches(detector, index, held_out):
    return detector.match(held_out, index)


def test_transformed_copies_of_training_images_are_detected(copies, copy_matches) -> None:
    hits = detected(copy_matches, copies)
    missed = [copy.description for copy, hit in zip(copies, hits) if not hit]
    assert hits.mean() >= 0.95, f"detected {hits.sum()}/{len(copies)}; missed: {missed}"
    assert np.median(copy_matches.scores) > 0.9  # most copies are far above the threshold, not scraping past it


def test_different_real_lesions_and_clinical_photos_are_not_copies(
    detector, index, held_out, held_out_matches, pad_images
) -> None:
    isic = held_out_matches
    pad = detector.match(pad_images, index)
    assert isic.is_copy.sum() <= 0.02 * len(held_out), f"{isic.is_copy.sum()} of {len(held_out)} held-out flagged"
    assert pad.is_copy.sum() <= 0.01 * len(pad_images), f"{pad.is_copy.sum()} of {len(pad_images)} pad flagged"
    assert np.median(isic.scores) < 0.3 and np.median(pad.scores) < 0.2  # typical real images are nowhere near


def test_exact_copies_score_at_the_maximum(detector, index, training) -> None:
    matches = detector.match(training[:8], index)
    assert list(matches.training_index) == list(range(8))
    assert matches.scores.min() >= 0.999 and matches.scores.max() <= 1.0 + 1e-5
    assert all(match.transform == "identity" for match in matches.matches)
    np.testing.assert_allclose([match.window for match in matches.matches], [(0, 0, 1, 1)] * 8, atol=0.01)


@pytest.mark.parametrize("kind", TRANSFORM_KINDS)
def test_each_transform_alone_is_detected(detector, index, training, kind) -> None:
    copies = make_transformed_copies(training[:20], seed=11, kinds=(kind,))
    assert all(copy.kinds == (kind,) for copy in copies)
    matches = detector.match([copy.image for copy in copies], index)
    hits = detected(matches, copies)
    assert hits.sum() >= 19, [(c.description, round(m.score, 3)) for c, m in zip(copies, matches.matches)]
    if kind in ("flip", "rot90"):  # the reported transform undoes the applied one exactly
        for copy, match in zip(copies, matches.matches):
            assert np.array_equal(apply_named(training[copy.source_index], match.transform), copy.image)


def apply_named(image: np.ndarray, transform: str) -> np.ndarray:
    for step in transform.split("+"):
        if step == "hflip":
            image = image[:, ::-1]
        elif step.startswith("rot"):
            image = np.rot90(image, int(step[3:]) // 90)
    return image


def test_crops_report_the_matched_window(detector, index, training) -> None:
    copies = make_transformed_copies(training[:10], seed=5, kinds=("crop",))
    matches = detector.match([copy.image for copy in copies], index)
    for copy, match in zip(copies, matches.matches):
        x0, y0, x1, y1 = match.window
        kept = int(copy.transforms[0].split()[1].rstrip("%")) / 100
        assert abs((x1 - x0) * (y1 - y0) - kept) < 0.05, (copy.description, match.window)


def test_transformed_copies_are_deterministic_for_a_seed(training) -> None:
    first = make_transformed_copies(training[:12], seed=7)
    again = make_transformed_copies(training[:12], seed=7)
    other = make_transformed_copies(training[:12], seed=8)
    assert [c.description for c in first] == [c.description for c in again]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(first, again))
    assert [c.description for c in first] != [c.description for c in other]
    assert [c.source_index for c in first] == list(range(12))
    assert {kind for c in first for kind in c.kinds} <= set(TRANSFORM_KINDS) and all(c.kinds for c in first)
    crop = make_transformed_copies(training[:30], seed=1, kinds=("crop",))
    areas = [c.image.shape[0] * c.image.shape[1] / (t.shape[0] * t.shape[1]) for c, t in zip(crop, training[:30])]
    assert 0.49 <= min(areas) and max(areas) <= 0.99


def test_matching_is_deterministic(detector, index, training, held_out) -> None:
    candidates = [copy.image for copy in make_transformed_copies(training[:6], seed=2)] + held_out[:6]
    first, again = detector.match(candidates, index), detector.match(candidates, training)
    np.testing.assert_array_equal(first.scores, again.scores)
    assert [m.transform for m in first.matches] == [m.transform for m in again.matches]


def test_calibration_on_real_images(held_out_matches, copy_matches, copies) -> None:
    result = calibrate_from_matches(held_out_matches, copy_matches, copies, 0.01, seed=0)
    # 150 held-out scores: the conformal rank ceil(151 * 0.99) = 150 is the largest held-out score
    assert result.threshold == pytest.approx(result.held_out_score_quantiles["max"])
    assert result.in_sample_false_copies.count == 0
    assert result.false_copies.n == N_HELD_OUT and result.false_copies.count <= 3
    assert result.false_copies.ci.low <= result.false_copies.rate <= result.false_copies.ci.high
    assert result.detection.n == len(copies) and result.detection.rate >= 0.9
    assert result.copy_score_quantiles["median"] > result.held_out_score_quantiles["max"]
    assert set(result.detection_by_transform) == set(TRANSFORM_KINDS)
    expected = result.false_copies.rate <= 0.01 and result.detection.rate >= 0.95
    assert result.passes == expected and "point estimates" in result.passes_rule
    json.dumps(result.to_dict())


def test_calibration_end_to_end_at_a_looser_target(detector, training, held_out) -> None:
    copies = make_transformed_copies(training[:10], seed=4)
    result = calibrate_copy_detector(training[:10], held_out[:30], copies, 0.05, detector=detector, seed=1)
    assert result.n_training == 10 and result.false_copies.n == 30 and result.detection.n == 10
    assert result.false_copies.count <= 2 and result.detection.count >= 9
    assert result.passes == (result.false_copies.rate <= 0.05 and result.detection.rate >= 0.95)


def test_conformal_threshold() -> None:
    scores = np.arange(1, 200) / 1000.0  # 199 scores
    assert conformal_threshold(scores, 0.01) == pytest.approx(0.198)  # rank ceil(200 * 0.99) = 198
    with pytest.raises(InsufficientSamplesError, match="at least 99"):
        conformal_threshold(scores[:98], 0.01)


def test_copy_rate_lists_flagged_pairs(detector, index, training, held_out) -> None:
    copies = make_transformed_copies(training[:5], seed=9, kinds=("flip", "crop", "jpeg"))
    candidates = held_out[:20] + [copy.image for copy in copies]
    result = compute_copy_rate(candidates, index, detector=detector)
    flagged = {pair.candidate_index: pair.training_index for pair in result.flagged}
    assert {20 + i: copy.source_index for i, copy in enumerate(copies)}.items() <= flagged.items()
    assert result.copies == len(result.flagged) <= 6 and result.n_candidates == 25 and result.n_training == N_TRAINING
    assert result.copy_rate == pytest.approx(result.copies / 25)
    assert result.copy_ci.low <= result.copy_rate <= result.copy_ci.high and result.copy_ci.method == "Wilson score"
    assert [p.score for p in result.flagged] == sorted((p.score for p in result.flagged), reverse=True)
    assert result.threshold == DEFAULT_THRESHOLD
    json.dumps(result.to_dict())


def test_bad_input_is_refused_clearly(detector, training, held_out) -> None:
    with pytest.raises(ValueError, match="candidates is empty"):
        detector.match([], training)
    with pytest.raises(ValueError, match="training is empty"):
        detector.match(training[:2], [])
    grey = training[0].mean(axis=2).astype(np.uint8)
    with pytest.raises(ValueError, match=r"candidates\[1\] must be a uint8 HxWx3 RGB array"):
        detector.match([training[1], grey], training[:3])
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        detector.match([training[0].astype(np.float32)], training[:3])
    with pytest.raises(ValueError, match="images is empty"):
        make_transformed_copies([], seed=0)
    with pytest.raises(ValueError, match="kinds must be"):
        make_transformed_copies(training[:2], seed=0, kinds=("mirror",))
    copies = make_transformed_copies(training[:5], seed=0)
    with pytest.raises(ValueError, match="pixel-identical"):
        calibrate_copy_detector(training[:5], held_out[:120] + training[:1], copies, detector=detector)
    with pytest.raises(ValueError, match="transformed_copies is empty"):
        calibrate_copy_detector(training[:5], held_out[:120], [], detector=detector)
    with pytest.raises(InsufficientSamplesError, match="needs at least"):
        calibrate_copy_detector(training[:5], held_out[:50], copies, detector=detector)
