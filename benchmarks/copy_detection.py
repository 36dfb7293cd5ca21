"""Calibration table and timing of the copy detector (metrics/copy_detection.py) on the shared real images.

    .venv/bin/python -m benchmarks.copy_detection [--seed 0] [--copies-seed 1] [--json out.json]

isic-uda1 is de-duplicated by decoded pixels (two known identical pairs) and split at random into halves: the first
half plays the training set, the second the held-out real images (different lesions). Transformed copies of the
training half are the positive control; pad-ufes-20 (clinical photos, another domain) is a second, never-used
negative set. Timing: 1,000 transformed copies of isic-uda1 images against all 557 isic-uda1 images.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from metrics.copy_detection import (
    TRANSFORM_KINDS,
    CopyDetector,
    calibrate_copy_detector,
    make_transformed_copies,
)
from metrics.image_io import open_rgb, sha256_array
from metrics.results import wilson_interval

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("DERMAUDIT_SHARED_DATA", REPO.parent / "shared" / "data"))


def load(folder: Path) -> list[np.ndarray]:
    with open(folder / "labels.csv", newline="") as handle:
        return [np.asarray(open_rgb(folder / row["file"])) for row in csv.DictReader(handle)]


def split_halves(images: list[np.ndarray], seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Random halves of the pixel-distinct images (one image of each identical group)."""
    first_of: dict[str, int] = {}
    for position, image in enumerate(images):
        first_of.setdefault(sha256_array(image), position)
    distinct = np.array(sorted(first_of.values()))
    order = distinct[np.random.default_rng(seed).permutation(len(distinct))]
    half = len(order) // 2
    return [images[i] for i in order[:half]], [images[i] for i in order[half:]]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fmt_rate(count: int, n: int) -> str:
    ci = wilson_interval(count, n)
    return f"{count}/{n} = {100 * count / n:.1f} % [{100 * ci.low:.1f}, {100 * ci.high:.1f}]"


def timed_match(detector: CopyDetector, candidates: list[np.ndarray], training: list[np.ndarray]) -> str:
    wall, cpu = time.perf_counter(), time.process_time()
    index = detector.index(training)
    index_wall, index_cpu = time.perf_counter() - wall, time.process_time() - cpu
    wall, cpu = time.perf_counter(), time.process_time()
    detector.match(candidates, index)
    match_wall, match_cpu = time.perf_counter() - wall, time.process_time() - cpu
    return (
        f"threads={detector.threads} workers={detector.workers}: index {index_wall:.1f} s wall ({index_cpu:.1f} s "
        f"CPU), match {match_wall:.1f} s wall ({match_cpu:.1f} s CPU), total {index_wall + match_wall:.1f} s wall; "
        "load average "
        + " ".join(f"{v:.1f}" for v in os.getloadavg())
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0, help="split of isic-uda1 and the cross-fitting folds")
    parser.add_argument("--copies-seed", type=int, default=1)
    parser.add_argument("--json", help="write the calibration as JSON here")
    parser.add_argument("--skip-timing", action="store_true")
    args = parser.parse_args()
    load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"# benchmarks/copy_detection.py  CPU: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"load average {load}")
    isic, pad = load(SHARED / "isic-uda1"), load(SHARED / "pad-ufes-20")
    training, held_out = split_halves(isic, args.seed)
    copies = make_transformed_copies(training, args.copies_seed)
    detector = CopyDetector()
    calibration = calibrate_copy_detector(training, held_out, copies, 0.01, detector=detector, seed=args.seed)
    threshold = calibration.threshold
    index = detector.index(training)
    pad_scores = detector.match(pad, index).scores
    print(
        f"\nisic-uda1 ({len(isic)} images, {len(training) + len(held_out)} pixel-distinct): {len(training)} training, "
        f"{len(held_out)} held out; {len(copies)} transformed copies (seed {args.copies_seed}); "
        f"calibration {calibration.seconds:.0f} s"
    )
    def row(name: str, value: str) -> None:
        print(f"| {name} | {value} |")

    def rounded(quantiles: dict[str, float]) -> str:
        return ", ".join(f"{name} {value:.3f}" for name, value in quantiles.items())

    print("| quantity | value |\n|---|---|")
    row("threshold (split-conformal, target 1 %)", f"{threshold:.4f}")
    fc, ins = calibration.false_copies, calibration.in_sample_false_copies
    row(f"false-copy rate, held-out isic-uda1, cross-fitted {calibration.folds}-fold", fmt_rate(fc.count, fc.n))
    row("false-copy rate, held-out isic-uda1, in sample", fmt_rate(ins.count, ins.n))
    pad_flagged = int(np.sum(pad_scores > threshold))
    row("false-copy rate, pad-ufes-20 (never used to calibrate)", fmt_rate(pad_flagged, len(pad_scores)))
    detection = calibration.detection
    row("detection, transformed copies (random compositions)", fmt_rate(detection.count, detection.n))
    for kind, rate in calibration.detection_by_transform.items():
        row(f"detection, compositions including {kind}", fmt_rate(rate.count, rate.n))
    for kind in TRANSFORM_KINDS:
        alone = make_transformed_copies(training, args.copies_seed, kinds=(kind,))
        found = detector.match([c.image for c in alone], index)
        sources = np.array([c.source_index for c in alone])
        hits = int(np.sum((found.scores > threshold) & (found.training_index == sources)))
        row(f"detection, {kind} alone", fmt_rate(hits, len(alone)))
    row("misattributed copies (above threshold, wrong source)", str(calibration.misattributed_copies))
    row("held-out isic-uda1 score quantiles", rounded(calibration.held_out_score_quantiles))
    pad_quantiles = {"median": 0.5, "q99": 0.99, "max": 1.0}
    pad_values = {name: float(np.quantile(pad_scores, level)) for name, level in pad_quantiles.items()}
    row("pad-ufes-20 score quantiles", rounded(pad_values))
    row("transformed-copy score quantiles", rounded(calibration.copy_score_quantiles))
    row(f"passes ({calibration.passes_rule})", str(calibration.passes))
    if args.json:
        Path(args.json).write_text(json.dumps(calibration.to_dict(), indent=1))
    if not args.skip_timing:
        candidates = [c.image for c in make_transformed_copies(isic, 5, copies_per_image=2)[:1000]]
        print(f"\ntiming: {len(candidates)} transformed copies vs {len(isic)} training images")
        for threads, workers in ((1, 1), (1, 2), (2, 1)):
            print("  " + timed_match(CopyDetector(threads=threads, workers=workers), candidates, isic))


if __name__ == "__main__":
    main()
