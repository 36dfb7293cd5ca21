"""Validity checks on real data: a set against itself, monotone degradation, the copy baseline, and
dermoscopic vs clinical. FD is computed below full rank here (N < D = 1280) on purpose, always compared at
equal N, as the floor would be."""
from __future__ import annotations

import numpy as np
import pytest

from metrics.features import extract_features_from_arrays
from metrics.frechet import compute_frechet_distance, compute_real_floor
from metrics.kid import compute_kernel_distance
from metrics.precision_recall import compute_precision_recall

from .conftest import gaussian_blur, jpeg


def fd(reference, generated) -> float:
    return compute_frechet_distance(reference, generated, seed=0, n_jackknife_groups=0, allow_rank_deficient=True).value


def kid(reference, generated) -> float:
    return compute_kernel_distance(reference, generated, seed=0, subsets=1, n_jackknife_groups=0).full_sample_value


def test_a_set_against_itself(isic_reference) -> None:
    assert fd(isic_reference, isic_reference) == pytest.approx(0.0, abs=1e-6)
    same = compute_precision_recall(isic_reference, isic_reference, seed=0, n_bootstrap=0)
    assert same.precision == same.recall == same.coverage == 1.0


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,degrade,levels",
    [("gaussian blur sigma", gaussian_blur, (1, 2, 4)), ("JPEG quality", jpeg, (50, 20, 5))],
)
def test_degradation_increases_fd_and_kid_and_lowers_precision(
    isic_reference, isic_held_out, isic_held_out_squares, feature_cache, name, degrade, levels
) -> None:
    """Held-out real images degraded step by step, each step compared with the same reference at the same N."""
    steps = [isic_held_out] + [
        extract_features_from_arrays(degrade(isic_held_out_squares, level), cache_dir=feature_cache) for level in levels
    ]
    fds = [fd(isic_reference, step) for step in steps]
    kids = [kid(isic_reference, step) for step in steps]
    precisions = [compute_precision_recall(isic_reference, step, seed=0, n_bootstrap=0).precision for step in steps]
    assert np.all(np.diff(fds) > 0), (name, fds)
    assert np.all(np.diff(kids) > 0), (name, kids)
    assert np.all(np.diff(precisions) <= 0) and precisions[-1] < precisions[0], (name, precisions)


def test_copy_baseline_has_near_zero_fd(isic_reference, isic_paths, feature_cache) -> None:
    from metrics.features import extract_features

    copies = extract_features(isic_paths[: isic_reference.n], cache_dir=feature_cache)
    floor = compute_real_floor(isic_reference, seed=0)
    assert fd(isic_reference, copies) < 1e-6 * floor.floor


def test_dermoscopic_and_clinical_sets_are_far_apart(isic_reference, pad_features) -> None:
    """FD of isic-uda1 vs pad-ufes-20 against the isic-uda1 split floor, both at the same N per set."""
    floor = compute_real_floor(isic_reference, pad_features, seed=0)
    assert floor.generated > 2.0 * floor.floor, (floor.generated, floor.floor)
    assert max(floor.floor_values) < min(floor.generated_values)
