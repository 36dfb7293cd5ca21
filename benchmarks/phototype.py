"""Phototype estimation: throughput on 512-px images, and agreement with dermatologists on PAD-UFES-20.

1. Throughput of estimate_phototypes on 512-px images (isic-uda1 JPEGs, longest side 512; or --synthetic N rendered
   skin JPEGs when the shared data is not on the machine), serially and with 2 worker processes. Besides wall-clock
   images/s it prints CPU ms per image, which contention from other users changes far less; the load average is
   printed with every row. Target: >= 50 images/s on 2 cores.
2. Agreement on the 267 Fitzpatrick-labelled PAD-UFES-20 photos (Pacheco et al. 2020, CC BY 4.0), each beside the
   best constant predictor and a shuffled-label baseline, with the validation gate's verdict:
   ITA, ITA after Shades-of-Gray, and learned estimators (ordinal / multinomial) on the default extractor's
   features (metrics.features, EfficientNet-Lite0) plus skin-colour statistics, out-of-fold from patient-grouped
   5-fold cross-validation.

    .venv/bin/python benchmarks/phototype.py [--workers 1 2] [--synthetic 400] [--skip-validation]
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("DERMAUDIT_SHARED_DATA", REPO.parent / "shared" / "data"))

from metrics.phototype import FITZPATRICK_NAMES, estimate_phototypes  # noqa: E402
from metrics.phototype_learned import colour_statistics, cross_validated_predictions  # noqa: E402
from metrics.phototype_validation import agreement_report  # noqa: E402


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def render_synthetic_jpegs(folder: Path, n: int) -> list[Path]:
    """512 x 384 JPEGs of skin with a lesion and hairs: a stand-in for dermoscopy when no data is available."""
    from PIL import Image
    from skimage.color import lab2rgb

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:384, 0:512].astype(np.float64)
    paths = []
    for i in range(n):
        lab = np.empty((384, 512, 3))
        lab[...] = (rng.uniform(40, 75), rng.uniform(6, 16), rng.uniform(10, 22))
        lab[..., 0] += rng.normal(0, 1.5, size=(384, 512))
        radius = np.hypot(yy - 192 + rng.uniform(-40, 40), xx - 256 + rng.uniform(-40, 40))
        weight = np.clip((rng.uniform(50, 140) - radius) / 5, 0, 1)[..., None]
        lab = lab * (1 - weight) + np.array([30.0, 15.0, 20.0]) * weight
        rgb = np.round(np.clip(lab2rgb(lab), 0, 1) * 255).astype(np.uint8)
        path = folder / f"synthetic_{i:04d}.jpg"
        Image.fromarray(rgb).save(path, quality=92)
        paths.append(path)
    return paths


def benchmark_throughput(paths: list[Path], workers: list[int], repeats: int) -> None:
    print(f"\n## Throughput: {len(paths)} images, {paths[0].parent}")
    print(f"cores visible to this process: {len(os.sched_getaffinity(0))}")
    estimate_phototypes(paths[:8])  # warm-up: imports, first-call allocations
    header = ("workers", "run", "images", "wall s", "images/s", "CPU ms/img", "load 1-min")
    print(" ".join(f"{name:>{width}}" for name, width in zip(header, (7, 3, 6, 7, 9, 10, 10))))
    for n_workers in workers:
        for run in range(repeats):
            cpu_start, start = _cpu_seconds(), time.perf_counter()
            estimates = estimate_phototypes(paths, n_workers=n_workers)
            wall = time.perf_counter() - start
            cpu_ms = (_cpu_seconds() - cpu_start) / len(paths) * 1000
            print(f"{n_workers:>7} {run:>3} {len(paths):>6} {wall:>7.2f} {len(paths) / wall:>9.1f} {cpu_ms:>10.1f} "
                  f"{os.getloadavg()[0]:>10.2f}")
    undetermined = sum(e.fitzpatrick is None for e in estimates)
    print(f"undetermined: {undetermined} of {len(estimates)}")


def deep_features(paths: list[Path]) -> tuple[np.ndarray, dict]:
    """The default extractor's features (EfficientNet-Lite0), with their provenance."""
    from metrics.features import extract_features

    feature_set = extract_features([str(p) for p in paths])
    return np.asarray(feature_set.features, dtype=np.float64), feature_set.provenance()


def print_reports(reports) -> None:
    rows = [r.summary_row() for r in reports]
    print(pd.DataFrame(rows).to_string(index=False))
    for report in reports:
        names = [FITZPATRICK_NAMES[t] for t in range(1, 7)]
        confusion = pd.DataFrame(report.confusion, index=[f"label {n}" for n in names], columns=names)
        confusion = confusion.loc[confusion.sum(axis=1) > 0]
        print(f"\n{report.estimator}: {report.gate}")
        print(f"exact {report.exact:.3f} (const {report.best_constant.exact:.3f}, "
              f"shuffled {report.shuffled.exact:.3f}); "
              f"within one {report.within_one:.3f} (const {report.best_constant.within_one:.3f}, "
              f"shuffled {report.shuffled.within_one:.3f}); macro-MAE {report.macro_mae:.3f} "
              f"CI [{report.macro_mae_ci[0]:.3f}, {report.macro_mae_ci[1]:.3f}]; "
              f"MAE per type {({FITZPATRICK_NAMES[t]: round(v, 2) for t, v in report.mae_per_type.items()})}")
        print(confusion.to_string())


def benchmark_validation(seed: int) -> None:
    pad = SHARED / "pad-ufes-20"
    table = pd.read_csv(pad / "labels.csv")
    table = table[table["fitzpatrick"].notna()].reset_index(drop=True)
    paths = [pad / name for name in table["file"]]
    labels = table["fitzpatrick"].astype(int).to_numpy()
    groups = table["patient_id"].to_numpy()
    print(f"\n## Agreement with dermatologists: PAD-UFES-20, {len(paths)} labelled clinical photos, "
          f"{len(set(groups))} patients (Pacheco et al. 2020, CC BY 4.0)")

    common = dict(groups=groups, acquisition="clinical", seed=seed)
    reports = []
    ita = estimate_phototypes(paths)
    reports.append(agreement_report(labels, ita, estimator="ita", **common))
    reports.append(agreement_report(labels, estimate_phototypes(paths, colour_constancy=True),
                                    estimator="ita+shades-of-gray", **common))

    start = time.perf_counter()
    features, provenance = deep_features(paths)
    print(f"features: {features.shape} in {time.perf_counter() - start:.1f} s; {provenance}")
    colour = colour_statistics(ita)
    for model in ("ordinal", "multinomial"):
        predictions = cross_validated_predictions(features, labels, groups, colour_stats=colour, model=model, seed=seed)
        reports.append(agreement_report(labels, predictions, estimator=f"learned-{model} (effnet+colour)", **common))
    predictions = cross_validated_predictions(
        features, labels, groups, colour_stats=colour, model="multinomial", class_weight="balanced", seed=seed
    )
    reports.append(agreement_report(labels, predictions, estimator="learned-multinomial balanced", **common))
    predictions = cross_validated_predictions(None, labels, groups, colour_stats=colour, model="ordinal", seed=seed)
    reports.append(agreement_report(labels, predictions, estimator="learned-ordinal (colour only)", **common))
    print_reports(reports)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--synthetic", type=int, default=0, help="render N 512-px JPEGs instead of using isic-uda1")
    parser.add_argument("--skip-validation", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.synthetic:
            paths = render_synthetic_jpegs(Path(tmp), args.synthetic)
        else:
            paths = sorted((SHARED / "isic-uda1" / "images").glob("*.jpg"))
        benchmark_throughput(paths, args.workers, args.repeats)
    if not args.skip_validation:
        benchmark_validation(args.seed)


if __name__ == "__main__":
    main()
