"""Results are JSON-ready, name their extractor, k, N, CI and seed, and the same seed gives the same numbers."""
from __future__ import annotations

import json

import numpy as np
import pytest

from metrics.feature_suite import compute_feature_metrics
from metrics.frechet import compute_frechet_distance
from metrics.results import resolve_seed, to_jsonable


@pytest.mark.slow
def test_suite_is_json_ready_and_reproducible(isic_reference, isic_held_out) -> None:
    first = compute_feature_metrics(isic_reference, isic_held_out, seed=3, allow_rank_deficient=True)
    second = compute_feature_metrics(isic_reference, isic_held_out, seed=3, allow_rank_deficient=True)
    a, b = first.to_dict(), second.to_dict()
    a.pop("timings_s"), b.pop("timings_s")
    assert a == b
    text = json.dumps(first.to_dict(), allow_nan=False)
    assert "FD (EfficientNet-Lite0, ImageNet)" in text and '"k": 5' in text
    fd = first.to_dict()["frechet"]
    assert fd["n_reference"] == 180 and fd["n_generated"] == 60 and fd["seed"] is not None
    assert fd["ci"]["low"] <= fd["value"] <= fd["ci"]["high"]
    assert fd["provenance"]["weights_sha256"] == isic_reference.weights_sha256
    other = compute_frechet_distance(isic_reference, isic_held_out, seed=4, allow_rank_deficient=True)
    again = compute_frechet_distance(isic_reference, isic_held_out, seed=3, allow_rank_deficient=True)
    assert other.ci != again.ci  # the seed matters where there is randomness (jackknife groups)
    assert other.value == again.value  # and nowhere else


def test_seed_handling() -> None:
    assert resolve_seed(5)[0] == 5
    generator = np.random.default_rng(1)
    recorded, _ = resolve_seed(generator)
    assert recorded == resolve_seed(np.random.default_rng(1))[0]
    assert to_jsonable({"x": np.float32(1.5), "y": np.nan, "z": (np.int64(2),)}) == {"x": 1.5, "y": None, "z": [2]}
