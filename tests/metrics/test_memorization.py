"""Memorization: reference images submitted as generated are flagged, flipped-and-cropped copies mostly still
are, the real held-out baseline is reported, and known duplicates inside the shared sets are found."""
from __future__ import annotations

import json

import pytest

from metrics.duplicates import find_duplicate_pairs, load_pixel_views
from metrics.features import extract_features_from_arrays
from metrics.image_io import load_squares
from metrics.memorization import compute_memorization

from .conftest import N_REFERENCE, flip_and_crop


@pytest.fixture(scope="module")
def reference_views(isic_paths):
    return load_pixel_views(isic_paths[:N_REFERENCE])


def test_copy_baseline_is_flagged(isic_reference, isic_paths, reference_views, feature_cache) -> None:
    from metrics.features import extract_features

    copies = extract_features(isic_paths[:N_REFERENCE], cache_dir=feature_cache)  # the training images themselves
    result = compute_memorization(
        isic_reference, copies, reference_images=reference_views, generated_images=reference_views, seed=0
    )
    assert result.memorized_fraction >= 0.95
    assert result.exact_duplicates == N_REFERENCE
    assert result.nearest_feature_index == tuple(range(N_REFERENCE))
    first = result.flagged[0]
    assert {"exact-duplicate", "authenticity-features"} <= set(first.reasons)
    assert first.generated_key == first.reference_key  # the pair a report shows side by side
    json.dumps(result.to_dict())


@pytest.mark.slow
def test_flipped_and_cropped_copies_are_still_flagged(
    isic_reference, isic_paths, reference_views, feature_cache
) -> None:
    transformed = flip_and_crop(load_squares(isic_paths[:100], 224))
    features = extract_features_from_arrays(transformed, cache_dir=feature_cache)
    result = compute_memorization(
        isic_reference, features, reference_images=reference_views, generated_images=transformed, seed=0
    )
    assert result.memorized_fraction >= 0.80
    hits = sum(pair.reference_index == pair.generated_index for pair in result.flagged)
    assert hits >= 80, "flagged pairs must point at the image that was copied"


def test_real_held_out_images_show_the_rules_baseline(isic_reference, isic_held_out, pad_features) -> None:
    novel = compute_memorization(isic_reference, isic_held_out, seed=0)
    assert 0.0 < novel.real_baseline_copy_fraction < 0.6 and novel.real_baseline_n == 90
    assert novel.feature_copy_fraction < 0.6  # novel real images: far from "all copies"
    other_domain = compute_memorization(isic_reference, pad_features, seed=0)
    assert other_domain.feature_copy_fraction < 0.15
    assert other_domain.memorized_ci.low <= other_domain.memorized_fraction <= other_domain.memorized_ci.high


@pytest.mark.slow
def test_known_duplicates_inside_isic_uda1_are_found(isic_paths) -> None:
    views = load_pixel_views(isic_paths)
    pairs = find_duplicate_pairs(views)
    names = {(isic_paths[p.first_index].stem, isic_paths[p.second_index].stem, p.kind) for p in pairs}
    assert ("ISIC_0000279", "ISIC_0000280", "exact") in names
    assert ("ISIC_0000477", "ISIC_0000512", "exact") in names


@pytest.mark.slow
def test_no_false_duplicates_in_pad_ufes_20(pad_paths) -> None:
    """412 distinct photos (several lesions photographed twice, e.g. PAT_100_393_595 / _898): none is a duplicate.
    (The data README names a byte-identical pair PAT_701_1321_156 = PAT_701_4056_457; neither file is in this
    copy of the set, and no two files in it share their bytes.)"""
    assert find_duplicate_pairs(load_pixel_views(pad_paths)) == []
