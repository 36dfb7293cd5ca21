"""Time every feature-space metric, CIs included, for N generated vs N reference features (default 2,000 each).

    .venv/bin/python -m benchmarks.metrics [--n 2000] [--seed 0]

The shared data holds 557 + 412 real images, fewer than 2 x 2,000, so the features are drawn from Gaussians fitted to
real EfficientNet-Lite0 features (reference: isic-uda1, generated: pad-ufes-20; covariance plus a small isotropic
term, since 557 images span only 556 of the 1,280 dimensions). Timing depends on N and D, not on the values.
Pixel-space metrics (MS-SSIM diversity, paired mode, pixel neighbours, duplicates) need images and are not included.
"""
from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("DERMAUDIT_SHARED_DATA", REPO.parent / "shared" / "data"))


def labelled(folder: Path) -> list[Path]:
    with open(folder / "labels.csv", newline="") as handle:
        return [folder / row["file"] for row in csv.DictReader(handle)]


def fitted_sample(features: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    mean = features.mean(axis=0)
    centred = (features - mean) / np.sqrt(len(features) - 1)
    jitter = 0.05 * np.sqrt(np.mean(np.var(features, axis=0)))
    draws = rng.normal(size=(n, len(features))) @ centred + rng.normal(size=(n, features.shape[1])) * jitter
    return (mean + draws).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "dermaudit-benchmark-features"))
    args = parser.parse_args()

    from metrics.feature_suite import compute_feature_metrics
    from metrics.features import FeatureSet, extract_features

    print("# benchmarks/metrics.py  load average %.2f %.2f %.2f (start)" % os.getloadavg())
    isic = extract_features(labelled(SHARED / "isic-uda1"), cache_dir=args.cache)
    pad = extract_features(labelled(SHARED / "pad-ufes-20"), cache_dir=args.cache)
    rng = np.random.default_rng(args.seed)

    def as_set(rows: np.ndarray, tag: str) -> FeatureSet:
        keys = tuple(f"{tag}{i:060x}" for i in range(len(rows)))
        return FeatureSet(rows, keys, isic.extractor_id, isic.preprocessing_id, isic.weights_sha256)

    reference = as_set(fitted_sample(isic.features.astype(np.float64), args.n, rng), "aaaa")
    generated = as_set(fitted_sample(pad.features.astype(np.float64), args.n, rng), "bbbb")
    start = time.perf_counter()
    report = compute_feature_metrics(reference, generated, seed=args.seed)
    wall = time.perf_counter() - start

    r = report
    rows = [
        ("FD + jackknife CI (10 groups)", "fd", f"{r.frechet.value:.2f} [{r.frechet.ci.low:.2f}, {r.frechet.ci.high:.2f}]"),
        ("FD-infinity (15 sizes)", "fd_infinity", f"{r.fd_infinity.value:.2f} (R^2 {r.fd_infinity.r_squared:.3f})"),
        ("real-vs-real floor (5 splits)", "real_floor", f"floor {r.real_floor.floor:.2f}, generated {r.real_floor.generated:.2f} at N={r.real_floor.n_per_set}"),
        ("KID (100 subsets of 1000) + CI", "kid", f"{r.kernel_distance.value:.4f} +- {r.kernel_distance.subset_std:.4f}"),
        ("precision/recall/density/coverage k=5 + CIs", "prdc", f"P {r.precision_recall.precision:.3f} R {r.precision_recall.recall:.3f} D {r.precision_recall.density:.3f} C {r.precision_recall.coverage:.3f}"),
        ("Vendi reference + CI", "vendi_reference", f"{r.vendi_reference.value:.1f}"),
        ("Vendi generated + CI", "vendi_generated", f"{r.vendi_generated.value:.1f}"),
        ("Inception Score (effnet head) + CI", "inception_score", f"{r.inception_score.value:.2f}"),
        ("Mode Score (effnet head) + CI", "mode_score", f"{r.mode_score.value:.2f}"),
        ("memorization (feature space)", "memorization", f"copy candidates {r.memorization.feature_copy_fraction:.3f} (real baseline {r.memorization.real_baseline_copy_fraction:.3f})"),
    ]
    print(f"\nN = {args.n} reference vs {args.n} generated, D = {reference.dim}\n")
    print(f"{'metric':45s} {'seconds':>8s}  value")
    for name, key, value in rows:
        print(f"{name:45s} {report.timings_s[key]:8.2f}  {value}")
    print(f"{'total (target < 60 s on 2 cores)':45s} {wall:8.2f}")
    print("# load average %.2f %.2f %.2f (end)" % os.getloadavg())


if __name__ == "__main__":
    main()
