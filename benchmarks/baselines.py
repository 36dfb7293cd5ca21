"""Reference generators (issue 5): train each on isic-uda1 at 64 px within a budget, then measure what it learnt.

For each kind (dcgan; cdcgan conditioned on diagnosis; vae) it prints:
  - steps, wall time, steps/s and images/s, and steps per CPU-second (which contention from other users changes
    far less than wall time; the load average is printed beside every timing);
  - FD (default extractor) of N samples vs the reference at step 0 and at the end, with the 95% CI that
    metrics.frechet gives (delete-a-group jackknife);
  - the real-vs-real floor (FD between disjoint halves of the reference) and the generator at that same N;
  - precision/recall (k=5), the memorization rate, and the Vendi score of samples vs the reference's;
  - the targets of the issue (final FD <= 50% of step 0, memorization < 5%, Vendi >= half the reference's),
and writes a PNG grid of samples per kind (plus one of the reference) and all numbers as JSON.

The reference for every metric is the very array the generators were trained on (557 images, centre square crop,
64 px, PIL Lanczos), so FD measures the generator rather than the resolution; the feature extractor then applies
its own named preprocessing to both sets alike.

    .venv/bin/python benchmarks/baselines.py [--minutes 10 | --steps 1000] [--kinds dcgan cdcgan vae] [--threads 1]
        [--config vertical_flip=false vae_kl_weight=0.5 ...]   # ablations: any TrainConfig field, value as JSON
    .venv/bin/python benchmarks/baselines.py --evaluate-only [--restand-statistics]   # re-measure, no training
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("DERMAUDIT_SHARED_DATA", REPO.parent / "shared" / "data"))

from auditor.generation.baselines import (  # noqa: E402
    Checkpoint,
    TrainConfig,
    TrainingImages,
    TrainProgress,
    encode_class_labels,
    load_checkpoint,
    load_training_images,
    sample,
    save_checkpoint,
    train,
)
from auditor.generation.baselines.gan import stand_generator_statistics  # noqa: E402
from auditor.generation.baselines.sampling import load_sampling_model  # noqa: E402
from metrics.diversity import compute_vendi_score  # noqa: E402
from metrics.features import FeatureSet, extract_features_from_arrays  # noqa: E402
from metrics.frechet import compute_frechet_distance, compute_real_floor  # noqa: E402
from metrics.memorization import compute_memorization  # noqa: E402
from metrics.precision_recall import compute_precision_recall  # noqa: E402

TARGET_FD_RATIO = 0.5
TARGET_MEMORIZATION = 0.05
TARGET_VENDI_RATIO = 0.5
PRDC_K = 5


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_average() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def load_isic(data_dir: Path, image_size: int) -> TrainingImages:
    with open(data_dir / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    labels, class_names = encode_class_labels([row["diagnosis"] for row in rows])
    return load_training_images(
        [data_dir / row["file"] for row in rows], image_size=image_size, labels=labels, class_names=class_names
    )


def save_grid(images: np.ndarray, path: Path, columns: int = 8) -> None:
    rows = -(-len(images) // columns)
    size = images.shape[1]
    canvas = np.full((rows * (size + 2) + 2, columns * (size + 2) + 2, 3), 255, dtype=np.uint8)
    for i, image in enumerate(images):
        top, left = 2 + (i // columns) * (size + 2), 2 + (i % columns) * (size + 2)
        canvas[top : top + size, left : left + size] = image
    Image.fromarray(canvas).save(path)


def grid_selection(images: np.ndarray, labels: np.ndarray | None, count: int = 64) -> np.ndarray:
    """The first `count` images; for a conditional batch (grouped by class) an equal share of each class where
    the class has enough, topped up from the others, so rare classes are visible."""
    if labels is None:
        return images[:count]
    classes = np.unique(labels)
    picked = np.concatenate([np.flatnonzero(labels == c)[: count // len(classes)] for c in classes])
    rest = np.setdiff1d(np.arange(len(images)), picked)[: count - len(picked)]
    return images[np.sort(np.concatenate([picked, rest]))]


def features_of_samples(checkpoint: Checkpoint, n: int, seed: int, cache_dir: Path) -> tuple[FeatureSet, Any]:
    batch = sample(checkpoint, n, seed=seed, device="cpu")
    return extract_features_from_arrays(batch.images, cache_dir=cache_dir), batch


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """["vertical_flip=false", "ema=0.999"] -> {"vertical_flip": False, "ema": 0.999}; values are JSON."""
    overrides = {}
    for item in items:
        name, separator, value = item.partition("=")
        if not separator:
            raise SystemExit(f"--config takes NAME=VALUE, got {item!r}")
        try:
            overrides[name] = json.loads(value)
        except json.JSONDecodeError as error:
            raise SystemExit(f"--config {name}: {value!r} is not a JSON value ({error})") from None
    return overrides


def config_for(kind: str, args: argparse.Namespace) -> TrainConfig:
    return TrainConfig.from_dict({
        "kind": kind,
        "image_size": args.image_size,
        "seed": args.seed,
        "max_steps": args.steps,
        "max_seconds": None if args.steps else args.minutes * 60.0,
        "device": args.device,
        "num_threads": args.threads,
        "progress_every": 50,
        **args.config,
    })


def train_kind(kind: str, images: TrainingImages, args: argparse.Namespace) -> tuple[Checkpoint, dict[str, Any]]:
    config = config_for(kind, args)

    def report(progress: TrainProgress) -> None:
        losses = " ".join(f"{name}={value:.3f}" for name, value in progress.losses.items())
        print(f"  [{kind}] step {progress.step:5d}  {progress.elapsed_seconds:6.0f} s  "
              f"{progress.steps_per_second:.2f} steps/s  {losses}", flush=True)

    load_before, cpu_before = load_average(), cpu_seconds()
    checkpoint = train(config, images, progress=report)
    cpu_used = cpu_seconds() - cpu_before
    sha256 = save_checkpoint(checkpoint, args.out / f"{kind}.pt")
    training = {
        "kind": kind,
        "checkpoint": str(args.out / f"{kind}.pt"),
        "checkpoint_sha256": sha256,
        "steps": checkpoint.steps,
        "wall_seconds": checkpoint.elapsed_seconds,
        "steps_per_second": checkpoint.steps / checkpoint.elapsed_seconds if checkpoint.elapsed_seconds else 0.0,
        "images_per_second": checkpoint.steps * config.batch_size / max(checkpoint.elapsed_seconds, 1e-9),
        "steps_per_cpu_second": checkpoint.steps / cpu_used if cpu_used else 0.0,
        "load_before": load_before,
        "load_after": load_average(),
        "device": checkpoint.device,
        "config_overrides": args.config,
        "config": config.to_dict(),
        "final_losses": checkpoint.loss_history[-1] if checkpoint.loss_history else {},
    }
    # Written before evaluation, so a failure there never costs the training run.
    (args.out / f"{kind}.training.json").write_text(json.dumps(training, indent=1))
    return checkpoint, training


def with_standing_statistics(checkpoint: Checkpoint, images: TrainingImages) -> Checkpoint:
    """The checkpoint with its EMA generator's batch-norm statistics re-measured, exactly as train() now does at
    the end. For checkpoints saved before that step existed; for newer ones it changes nothing."""
    model = load_sampling_model(checkpoint)
    labels = images.labels if checkpoint.kind == "cdcgan" else None
    stand_generator_statistics(model, checkpoint.config, labels, torch.device("cpu"))
    return dataclasses.replace(checkpoint, model_state={k: v.detach().clone() for k, v in model.state_dict().items()})


def evaluate_kind(
    checkpoint: Checkpoint, images: TrainingImages, reference: FeatureSet, args: argparse.Namespace
) -> dict[str, Any]:
    cache = args.out / "feature-cache"
    # Step 0 is the same network a zero-step run of the same config builds (initialisation is seeded).
    initial = train(TrainConfig(**{**checkpoint.config.to_dict(), "max_steps": 0, "max_seconds": None}), images)
    start_features, _ = features_of_samples(initial, args.samples, args.seed, cache)
    fd_start = compute_frechet_distance(reference, start_features, seed=0, allow_rank_deficient=True)
    generated, batch = features_of_samples(checkpoint, args.samples, args.seed, cache)
    save_grid(grid_selection(batch.images, batch.labels), args.out / f"{checkpoint.kind}_samples.png")
    fd_end = compute_frechet_distance(reference, generated, seed=0, allow_rank_deficient=True)
    floor = compute_real_floor(reference, generated, seed=0)
    prdc = compute_precision_recall(reference, generated, seed=0, k=PRDC_K, n_bootstrap=args.bootstrap)
    reference_images = images.pixels.permute(0, 2, 3, 1).numpy()
    memorization = compute_memorization(
        reference, generated, reference_images=list(reference_images), generated_images=list(batch.images), seed=0
    )
    result = {
        "n_samples": args.samples,
        "fd_step0": fd_start.value,
        "fd_step0_ci": [fd_start.ci.low, fd_start.ci.high] if fd_start.ci else None,
        "fd_end": fd_end.value,
        "fd_end_ci": [fd_end.ci.low, fd_end.ci.high] if fd_end.ci else None,
        "fd_label": fd_end.label,
        "floor_n": floor.n_per_set,
        "floor_real_vs_real": floor.floor,
        "floor_generated_same_n": floor.generated,
        "precision": prdc.precision,
        "recall": prdc.recall,
        "density": prdc.density,
        "coverage": prdc.coverage,
        "k": prdc.k,
        "memorized_fraction": memorization.memorized_fraction,
        "memorized_ci": [memorization.memorized_ci.low, memorization.memorized_ci.high],
        "feature_copy_fraction": memorization.feature_copy_fraction,
        # The same rule on real images no generator saw (one half of the reference against the other half).
        "real_baseline_copy_fraction": memorization.real_baseline_copy_fraction,
        "real_baseline_n": memorization.real_baseline_n,
        "pixel_copy_fraction": memorization.pixel_copy_fraction,
        "exact_duplicates": memorization.exact_duplicates,
        "near_duplicates": memorization.near_duplicates,
    }
    for name, features in (("samples", generated), ("reference", reference)):
        vendi = compute_vendi_score(features, seed=0)
        result[f"vendi_{name}"] = vendi.value
        result[f"vendi_{name}_ci"] = [vendi.ci.low, vendi.ci.high] if vendi.ci else None
    result["targets"] = check_targets(result)
    return result


def check_targets(result: dict[str, Any]) -> dict[str, str]:
    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    return {
        f"final FD <= {TARGET_FD_RATIO:.0%} of step 0": verdict(result["fd_end"] <= TARGET_FD_RATIO * result["fd_step0"]),
        f"memorization < {TARGET_MEMORIZATION:.0%}": verdict(result["memorized_fraction"] < TARGET_MEMORIZATION),
        f"Vendi >= {TARGET_VENDI_RATIO:.0%} of reference": verdict(
            result["vendi_samples"] >= TARGET_VENDI_RATIO * result["vendi_reference"]
        ),
    }


def print_summary(results: list[dict[str, Any]]) -> None:
    print("\nkind    steps  wall s  steps/s  img/s  steps/CPU-s  FD step0 -> end (95% CI)       floor@N  gen@N  "
          "prec  recall  memorized  Vendi samples/ref")
    for r in results:
        ci = r["fd_end_ci"] or [float("nan")] * 2
        per_cpu = r.get("steps_per_cpu_second")
        pixel_copies = "n/a" if r["pixel_copy_fraction"] is None else f"{r['pixel_copy_fraction']:.1%}"
        print(
            f"{r['kind']:7s} {r['steps']:5d} {r['wall_seconds']:7.0f} {r['steps_per_second']:8.2f} "
            f"{r['images_per_second']:6.1f} {'n/a' if per_cpu is None else f'{per_cpu:.2f}':>11s}  "
            f"{r['fd_step0']:6.1f} -> {r['fd_end']:6.1f} ({ci[0]:.1f}-{ci[1]:.1f})  "
            f"{r['floor_real_vs_real']:5.1f}@{r['floor_n']} {r['floor_generated_same_n']:6.1f}  "
            f"{r['precision']:.3f} {r['recall']:.3f}   {r['memorized_fraction']:6.1%}    "
            f"{r['vendi_samples']:.2f}/{r['vendi_reference']:.2f}"
        )
        print("        targets: " + "; ".join(f"{name}: {verdict}" for name, verdict in r["targets"].items()))
        print(f"        {r['device']}; {r['load_before']} -> {r['load_after']}; {r['fd_label']}; k={r['k']}; "
              f"memorized = any rule (AuthPct features {r['feature_copy_fraction']:.1%}, "
              f"pixels {pixel_copies}, exact duplicates {r['exact_duplicates']}, near {r['near_duplicates']}); "
              f"the AuthPct feature rule flags {r.get('real_baseline_copy_fraction', float('nan')):.1%} of held-out "
              f"real images (half vs half, n={r.get('real_baseline_n', 0)})")
        if r.get("vendi_samples_ci") and r.get("vendi_reference_ci"):
            low, high = r["vendi_samples_ci"]
            print(f"        Vendi samples {r['vendi_samples']:.2f} [{low:.2f}, {high:.2f}], reference "
                  f"{r['vendi_reference']:.2f} [{r['vendi_reference_ci'][0]:.2f}, {r['vendi_reference_ci'][1]:.2f}]; "
                  f"ratio {r['vendi_samples'] / r['vendi_reference']:.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per generator (wall clock)")
    parser.add_argument("--steps", type=int, default=None, help="step budget instead of --minutes")
    parser.add_argument("--kinds", nargs="+", default=["dcgan", "cdcgan", "vae"], choices=["dcgan", "cdcgan", "vae"])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (1 is faster on a busy machine)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bootstrap", type=int, default=50, help="bootstrap resamples for the precision/recall CIs")
    parser.add_argument("--config", nargs="*", default=[], metavar="NAME=VALUE",
                        help="TrainConfig fields to override (value as JSON), e.g. vertical_flip=false")
    parser.add_argument("--data", type=Path, default=SHARED / "isic-uda1")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "baselines")
    parser.add_argument(
        "--evaluate-only", action="store_true",
        help="no training: re-measure the checkpoints recorded in OUT/<kind>.training.json",
    )
    parser.add_argument(
        "--restand-statistics", action="store_true",
        help="with --evaluate-only: re-measure GAN batch-norm statistics (checkpoints saved before train() did so)",
    )
    args = parser.parse_args()
    args.config = parse_overrides(args.config)
    args.out.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    images = load_isic(args.data, args.image_size)
    reference_arrays = images.pixels.permute(0, 2, 3, 1).numpy()
    save_grid(reference_arrays[:64], args.out / "reference.png")
    reference = extract_features_from_arrays(reference_arrays, cache_dir=args.out / "feature-cache")
    print(f"{len(images)} reference images, {images.preprocessing}; features {reference.extractor_id} "
          f"({reference.n}x{reference.dim}); {load_average()}", flush=True)

    results = []
    for kind in args.kinds:
        if args.evaluate_only:
            training = json.loads((args.out / f"{kind}.training.json").read_text())
            checkpoint = load_checkpoint(training["checkpoint"], training["checkpoint_sha256"])
            if args.restand_statistics and checkpoint.config.is_gan:
                checkpoint = with_standing_statistics(checkpoint, images)
                training["statistics_re_measured_at_evaluation"] = True
        else:
            checkpoint, training = train_kind(kind, images, args)
        results.append({**training, **evaluate_kind(checkpoint, images, reference, args)})
        print_summary(results[-1:])
        (args.out / "baselines.json").write_text(json.dumps(results, indent=1))
    print_summary(results)
    print(f"\nwrote {args.out}/baselines.json and *_samples.png; total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
