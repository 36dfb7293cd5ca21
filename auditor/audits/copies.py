"""Memorisation as calibrated copy detection (metrics/copy_detection.py), with its controls from the same run.

The copy rule's threshold is set on real images the generator never saw, at the audit's own resolution (the
library's default was calibrated at >= 128 px and lets different lesions through at 64 px), and checked on known
copies of the training images:

- held-out real images: the reference images that are not training images; when the reference *is* the training
  set, one random half of it (whole lesions) against the other half. Their cross-fitted false-copy rate is the
  negative control (the rule must PASS them);
- exact copies and transformed copies (flips, 90° rotations, crops to 50 % of the area, resizing, colour, blur,
  JPEG) of training images: the positive controls, each detected >= 95 % (matched to their own source).

With fewer held-out images than a 1 % conformal threshold needs (124 for 5 folds), the library's default threshold
is used and said so.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from auditor.audits.images import reference_halves, seeded
from auditor.models import Audit, Image
from metrics.copy_detection import (
    DEFAULT_THRESHOLD,
    CopyDetector,
    CopyMatches,
    calibrate_from_matches,
    make_transformed_copies,
)
from metrics.results import wilson_interval

TARGET_FALSE_COPY_RATE = 0.01
CONTROL_SIZE = 200  # copies of training images per positive control
FOLDS = 5


def _rate(count: int, n: int) -> dict:
    """Copies among n images with the Wilson 95% CI, as the memorisation criterion and its controls read it."""
    ci = wilson_interval(count, n)
    return {"n": n, "copies": count, "copy_rate": count / n if n else None,
            "copy_ci": {"low": ci.low, "high": ci.high, "method": ci.method}}


def _share(hits: np.ndarray) -> dict:
    return _rate(int(np.sum(hits)), len(hits))


def _sample(n_pool: int, size: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(n_pool, size=min(size, n_pool), replace=False).tolist())


def copy_stage(audit: Audit, training_images: list[Image], generated_images: list[Image],
               reference_images: list[Image]) -> dict:
    detector = CopyDetector(workers=2)
    training_paths = [image.path for image in training_images]
    index = detector.index(training_paths)
    if audit.training_set_id:
        known = {image.sha256 for image in training_images}
        held_out = [image for image in reference_images if image.sha256 not in known]
        held_out_index, held_out_against = index, "the training images"
    else:  # the reference is the training set: one half stands in for the training images, the other is held out
        first, second = reference_halves(audit, reference_images)
        held_out = [reference_images[row] for row in second]
        held_out_index = detector.index([reference_images[row].path for row in first])
        held_out_against = "the other half of the reference (the reference is the training set)"

    exact_rows = _sample(len(training_images), CONTROL_SIZE, seeded(audit, 51))
    transformed = make_transformed_copies([training_paths[row] for row in exact_rows], seeded(audit, 52))
    # source_index: into the training images, not into the sample
    transformed = [dataclasses.replace(copy, source_index=exact_rows[copy.source_index]) for copy in transformed]
    generated = detector.match([image.path for image in generated_images], index)
    exact = detector.match([training_paths[row] for row in exact_rows], index)
    transformed_matches = detector.match([copy.image for copy in transformed], index)
    held = detector.match([image.path for image in held_out], held_out_index) if held_out else None

    needed = math.ceil((1 / TARGET_FALSE_COPY_RATE - 1) * FOLDS / (FOLDS - 1))
    calibration = None
    if held is not None and len(held.matches) >= needed:
        calibration = calibrate_from_matches(held, transformed_matches, transformed, TARGET_FALSE_COPY_RATE,
                                             folds=FOLDS, seed=seeded(audit, 53))
        threshold = calibration.threshold
        negative = {**_rate(calibration.false_copies.count, calibration.false_copies.n),
                    "rule": f"cross-fitted ({FOLDS}-fold): each held-out image against a threshold set without it"}
        threshold_source = (f"calibrated on {len(held.matches)} held-out real images at this audit's resolution "
                            f"(split-conformal, false-copy target {TARGET_FALSE_COPY_RATE:.0%})")
    else:
        threshold = DEFAULT_THRESHOLD
        negative = _share(held.scores > threshold) if held is not None else {"error": "no held-out real images"}
        threshold_source = (f"the library's default (isic-uda1 at >= 128 px): only "
                            f"{len(held.matches) if held else 0} held-out real images, {needed} needed to calibrate")
    if held is not None:
        negative["against"] = held_out_against

    def detected(matches: CopyMatches, sources: list[int]) -> np.ndarray:
        return (matches.scores > threshold) & (matches.training_index == np.asarray(sources))

    flagged = sorted(((m.score, m) for m in generated.matches if m.score > threshold), key=lambda pair: -pair[0])
    return {
        "threshold": threshold, "threshold_source": threshold_source, "method": generated.method,
        "calibration": calibration.to_dict() if calibration else None,
        "generated": {**_share(generated.scores > threshold),
                      "score_quantiles": {q: float(np.quantile(generated.scores, v))
                                          for q, v in (("median", 0.5), ("q99", 0.99), ("max", 1.0))}},
        "held_out_real": negative,
        "exact_copies": _share(detected(exact, exact_rows)),
        "transformed_copies": {**_share(detected(transformed_matches, exact_rows)),
                               "transforms": sorted({kind for copy in transformed for kind in copy.kinds})},
        "flagged": [{"generated": generated_images[m.candidate_index].original_name,
                     "training": training_images[m.training_index].original_name, "score": m.score,
                     "transform": m.transform, "window": list(m.window),
                     "generated_sha256": generated_images[m.candidate_index].sha256,
                     "training_sha256": training_images[m.training_index].sha256} for _, m in flagged[:50]],
        "closest": [{"generated_sha256": generated_images[m.candidate_index].sha256,
                     "training_sha256": training_images[m.training_index].sha256, "score": m.score,
                     "transform": m.transform}
                    for m in sorted(generated.matches, key=lambda m: -m.score)[:4]],
        "seconds": generated.seconds + exact.seconds + transformed_matches.seconds + (held.seconds if held else 0.0),
    }
