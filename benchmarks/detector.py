"""Full evaluation of the synthetic-image detector (issue 6), printed as a table and written to results.json.

    .venv/bin/python benchmarks/detector.py                      # everything, cached stages are reused
    .venv/bin/python benchmarks/detector.py --stages throughput,road
    .venv/bin/python benchmarks/detector.py --quick               # smoke run: tiny budgets, numbers meaningless

Stages (each caches its output under --out-dir, so a later run can pick up where another machine stopped):
  generators  train DCGAN, class-conditional DCGAN (on diagnosis) and VAE baselines (auditor.generation.baselines) on all
              real images; sample as many images of each as there are real images
  detectors   train a detector on real vs DCGAN ("gan") and one on real vs VAE ("vae"); the real images' split is
              the same for both, and duplicates (by pixels) share a split
  evaluate    in-distribution metrics with bootstrap CIs, per estimated Fitzpatrick group, robustness, and
              cross-family AUCs (gan -> cdcgan/vae, vae -> dcgan/cdcgan); overlay PNGs
  throughput  scoring and Grad-CAM images/s on this machine
  road        ROAD faithfulness of Grad-CAM vs RandomCAM (mean of several seeds) on 160 test images (80 per class,
              the issue asks for >= 64), for all of them and for each class
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parent.parent
# This script's own folder holds sibling scripts, and its metrics.py would shadow the metrics package.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != REPO / "benchmarks"]
sys.path.append(str(REPO))  # appended: a PYTHONPATH entry (e.g. a device run's stub) wins

from deepfake_detector import (  # noqa: E402
    DataSplit,
    DetectorConfig,
    LabelledImages,
    TrainConfig,
    WangAugmentation,
    compute_cams,
    evaluate_detector,
    hash_images,
    load_detector,
    save_detector,
    save_overlays,
    score_images,
    split_by_group,
    standardise_images,
    train_detector,
)
from deepfake_detector.faithfulness import (  # noqa: E402
    DEFAULT_PERCENTILES,
    RoadImageScores,
    road_image_scores,
    summarise_road,
)
from metrics.torch_threads import intra_op_threads  # noqa: E402

FAMILIES = ("dcgan", "cdcgan", "vae")
DETECTORS = {"gan": "dcgan", "vae": "vae"}  # detector name -> generator family it is trained against
TARGETS = {"auc": 0.98, "robust_auc": 0.90, "cross_auc": 0.85, "ece_after": 0.05, "train_minutes": 15.0}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = Path(os.environ.get("DERMAUDIT_SHARED_DATA", REPO.parent / "shared" / "data")) / "isic-uda1"
    parser.add_argument("--data-dir", type=Path, default=default_data)
    parser.add_argument("--reals-npz", type=Path, help="standardised reals + diagnoses instead of --data-dir")
    parser.add_argument("--out-dir", type=Path, default=REPO / "benchmarks" / "out" / "detector")
    parser.add_argument("--stages", default="generators,detectors,evaluate,throughput,road")
    parser.add_argument("--gan-steps", type=int, default=1000)
    parser.add_argument("--vae-steps", type=int, default=2000)
    parser.add_argument("--device", default="auto", help="for generators and detectors")
    parser.add_argument("--num-threads", type=int, default=None)
    parser.add_argument("--max-epochs", type=int, default=40)
    parser.add_argument("--time-budget", type=float, default=15 * 60)
    parser.add_argument("--detectors", default="gan,vae", help="which detectors to train/evaluate")
    parser.add_argument("--learning-rate", type=float, default=TrainConfig.learning_rate)
    parser.add_argument("--patience", type=int, default=TrainConfig.patience)
    parser.add_argument("--no-flips", action="store_true", help="augmentation without flips")
    parser.add_argument("--max-translation", type=int, default=WangAugmentation.max_translation)
    parser.add_argument("--translation-step", type=int, default=WangAugmentation.translation_step)
    parser.add_argument("--input", choices=["rgb", "npr"], default=DetectorConfig.input,
                        help="what the ViT sees: pixels, or neighbouring-pixel residuals (NPR)")
    parser.add_argument("--blur-probability", type=float, default=WangAugmentation.blur_probability,
                        help="share of training images blurred (both classes); 0 for the blur ablation")
    parser.add_argument("--road-images", type=int, default=160, help="half real, half synthetic test images")
    parser.add_argument("--road-seeds", type=int, default=5)
    parser.add_argument("--road-workers", type=int, default=2, help="processes for the ROAD imputations")
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retrain", action="store_true", help="ignore cached samples and detectors")
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny budgets")
    if "--quick" in sys.argv:  # smaller defaults; options given explicitly still win
        parser.set_defaults(
            gan_steps=5, vae_steps=5, max_epochs=1, road_images=8, road_seeds=2, n_bootstrap=50,
            out_dir=REPO / "benchmarks" / "out" / "detector-quick",
        )
    return parser.parse_args()


def load_reals(args: argparse.Namespace) -> tuple[np.ndarray, list[str]]:
    if args.reals_npz:
        stored = np.load(args.reals_npz, allow_pickle=False)
        return stored["images"], [str(d) for d in stored["diagnoses"]]
    table = pd.read_csv(args.data_dir / "labels.csv")
    return standardise_images([args.data_dir / name for name in table["file"]]), table["diagnosis"].tolist()


def generator_samples(family: str, reals: np.ndarray, diagnoses: list[str], args) -> tuple[np.ndarray, dict]:
    """Samples of one baseline family, trained on all real images; cached as <family>_samples.npz."""
    steps = args.vae_steps if family == "vae" else args.gan_steps
    cache = args.out_dir / f"{family}_samples.npz"
    if cache.exists() and not args.retrain:
        stored = np.load(cache, allow_pickle=False)
        info = json.loads(str(stored["info"]))
        if info["steps"] == steps:
            return stored["images"], info
    from auditor.generation.baselines import TrainConfig as GeneratorConfig
    from auditor.generation.baselines import TrainingImages, encode_class_labels, sample, train
    from auditor.generation.baselines.data import preprocessing_description

    labels, class_names = encode_class_labels(diagnoses)
    training_images = TrainingImages(
        pixels=torch.from_numpy(reals).permute(0, 3, 1, 2).contiguous(),
        labels=torch.tensor(labels) if family == "cdcgan" else None,
        class_names=class_names if family == "cdcgan" else None,
        manifest_sha256=hash_images(reals),
        preprocessing=preprocessing_description(64, "lanczos"),
    )
    # Left-right flips only: the generators the README's detector results were measured against (up-down flips
    # became the generators' default afterwards), so the detector protocol stays the one reported.
    config = GeneratorConfig(kind=family, max_steps=steps, seed=args.seed, device=args.device, vertical_flip=False)
    started = time.perf_counter()
    checkpoint = train(config, training_images)
    batch = sample(checkpoint, len(reals), seed=args.seed + 1000, device=args.device)
    info = {
        "family": family,
        "steps": checkpoint.steps,
        "train_seconds": round(time.perf_counter() - started, 1),
        "device": checkpoint.device,
        "manifest_sha256": checkpoint.manifest_sha256,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, images=batch.images, info=json.dumps(info))
    return batch.images, info


def split_classes_separately(reals: np.ndarray, fakes: np.ndarray, seed: int) -> tuple[LabelledImages, DataSplit]:
    """The real images' split depends only on the reals and the seed, so every detector shares it."""
    dataset = LabelledImages.from_classes(reals, fakes)
    n_real = len(reals)
    real_split = split_by_group(dataset.labels[:n_real], dataset.groups[:n_real], seed=seed)
    fake_split = split_by_group(dataset.labels[n_real:], dataset.groups[n_real:], seed=seed)
    shared = set(dataset.groups[:n_real].tolist()) & set(dataset.groups[n_real:].tolist())
    if shared:
        raise RuntimeError(f"{len(shared)} generated images are pixel copies of real ones; split them by hand")
    parts = [np.r_[getattr(real_split, name), n_real + getattr(fake_split, name)] for name in ("train", "validation", "test")]
    return dataset, DataSplit(*parts)


def training_config(args) -> TrainConfig:
    augmentation = WangAugmentation(
        horizontal_flip=not args.no_flips,
        vertical_flip=not args.no_flips,
        max_translation=args.max_translation,
        translation_step=args.translation_step,
        blur_probability=args.blur_probability,
    )
    return TrainConfig(
        model=DetectorConfig(input=args.input),
        augmentation=augmentation,
        learning_rate=args.learning_rate,
        patience=args.patience,
        seed=args.seed,
        device=args.device,
        max_epochs=args.max_epochs,
        time_budget_s=args.time_budget,
        num_threads=args.num_threads,
    )


def trained_detector(name: str, dataset, split, manifests: dict, args) -> tuple:
    path = args.out_dir / f"detector_{name}.pt"
    record = args.out_dir / f"detector_{name}.json"
    if path.exists() and record.exists() and not args.retrain:
        info = json.loads(record.read_text())
        return load_detector(path, expected_sha256=info["sha256"], device=args.device), info
    config = training_config(args)
    print(f"[{name}] training on {len(split.train)} images, validating on {len(split.validation)}", flush=True)
    result = train_detector(
        dataset,
        split,
        config,
        manifests=manifests,
        progress=lambda p: print(
            f"  epoch {p.epoch:3d} loss {p.train_loss:.4f} val {p.validation_loss:.4f} "
            f"auc {p.validation_auc} {p.elapsed_s:6.0f}s",
            flush=True,
        ),
    )
    sha256 = save_detector(result.detector, path)
    info = {
        "sha256": sha256,
        "wall_s": round(result.wall_s, 1),
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "stopped_reason": result.stopped_reason,
        "device": result.detector.metadata["device"],
        "threads": torch.get_num_threads() if args.num_threads is None else args.num_threads,
        "learning_rate": config.learning_rate,
        "augmentation": asdict(config.augmentation),
        "validation": result.validation,
    }
    record.write_text(json.dumps(info, indent=1))
    return result.detector, info


def phototype_groups(images: np.ndarray) -> list[str]:
    """Estimated Fitzpatrick type per image (ITA; isic-uda1 has no recorded types), or "undetermined"."""
    from metrics.phototype import FITZPATRICK_NAMES, estimate_phototypes

    return [
        FITZPATRICK_NAMES[e.fitzpatrick] if e.fitzpatrick else "undetermined" for e in estimate_phototypes(list(images))
    ]


def _road_chunk(job: tuple) -> RoadImageScores:
    checkpoint, sha256, images, target, random_seeds, seed = job
    torch.set_num_threads(1)  # one process per core does the (single-threaded) ROAD imputations
    detector = load_detector(checkpoint, expected_sha256=sha256, device="cpu")
    return road_image_scores(detector, images, method="gradcam", target=target, random_seeds=random_seeds, seed=seed)


def road_in_processes(checkpoint: Path, sha256: str, images: np.ndarray, target: str, args) -> RoadImageScores:
    """ROAD per image, image chunks spread over processes; the imputation solves dominate and do not share."""
    seeds = tuple(range(args.road_seeds))
    chunks = [c for c in np.array_split(np.arange(len(images)), max(1, args.road_workers)) if len(c)]
    jobs = [(checkpoint, sha256, images[c], target, seeds, args.seed + k) for k, c in enumerate(chunks)]
    if len(jobs) == 1:
        return _road_chunk(jobs[0])
    with ProcessPoolExecutor(len(jobs), mp_context=multiprocessing.get_context("spawn")) as pool:
        return RoadImageScores.concatenate(list(pool.map(_road_chunk, jobs)))


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def measure_throughput(detector, images: np.ndarray, paths: list[Path] | None, thread_counts=(1, 2)) -> dict:
    """Images/s for scoring (arrays and JPEG files) and Grad-CAM, at each CPU thread count, with the load beside."""
    results = {"device": str(detector.device), "by_threads": {}}
    tiled = np.concatenate([images] * max(1, 2048 // len(images)))[:2048]
    for threads in thread_counts:
        with intra_op_threads(threads):
            results["by_threads"][str(threads)] = _throughput_row(detector, images, tiled, paths)
    return results


def _throughput_row(detector, images: np.ndarray, tiled: np.ndarray, paths: list[Path] | None) -> dict:
    score_images(detector, images[:64])  # warm-up
    row = {"load_before": load_average()}
    started = time.perf_counter()
    score_images(detector, tiled, batch_size=256)
    row["scoring_arrays_img_per_s"] = len(tiled) / (time.perf_counter() - started)
    if paths:
        started = time.perf_counter()
        score_images(detector, paths, batch_size=256)
        row["scoring_jpeg_paths_img_per_s"] = len(paths) / (time.perf_counter() - started)
    started = time.perf_counter()
    compute_cams(detector, tiled[:256], method="gradcam", batch_size=32)
    row["gradcam_img_per_s"] = 256 / (time.perf_counter() - started)
    row["load_after"] = load_average()
    return row


def fmt(metric) -> str:
    if metric is None:
        return "n/a"
    return f"{metric['value']:.3f} [{metric['ci_low']:.3f}, {metric['ci_high']:.3f}]"


def print_table(results: dict) -> None:
    rows: list[tuple[str, str, str]] = []
    for family, info in results.get("generators", {}).items():
        rows.append((f"generator {family}", f"{info['steps']} steps, {info['train_seconds']} s on {info['device']}", ""))
    for name, info in results.get("detectors", {}).items():
        minutes = info["wall_s"] / 60
        target = f"<= {TARGETS['train_minutes']:.0f} min on 2 CPU cores" if info["device"] == "cpu" else "(not CPU)"
        rows.append((f"[{name}] training", f"{minutes:.1f} min, {info['epochs']} epochs on {info['device']}", target))
    for name, evaluation in results.get("evaluation", {}).items():
        overall = evaluation["in_distribution"]["overall"]
        rows.append((f"[{name}] n test (real/synthetic)", f"{overall['n_real']}/{overall['n_synthetic']}", ""))
        rows.append((f"[{name}] ROC AUC", fmt(overall["roc_auc"]), f">= {TARGETS['auc']}"))
        rows.append((f"[{name}] average precision", fmt(overall["average_precision"]), ""))
        rows.append((f"[{name}] accuracy @ 0.5", fmt(overall["accuracy_at_0_5"]), ""))
        rows.append((f"[{name}] ECE before scaling", fmt(overall["ece_before_scaling"]), ""))
        rows.append((f"[{name}] ECE after scaling", fmt(overall["ece_after_scaling"]), f"<= {TARGETS['ece_after']}"))
        rows.append((f"[{name}] temperature", f"{evaluation['in_distribution']['temperature']:.3f}", ""))
        for perturbation, metric in evaluation["in_distribution"]["robustness_auc"].items():
            rows.append((f"[{name}] AUC after {perturbation}", fmt(metric), f">= {TARGETS['robust_auc']}"))
        for family, cross in evaluation["cross_family"].items():
            rows.append((f"[{name}] cross-family AUC on {family}", fmt(cross["roc_auc"]), f">= {TARGETS['cross_auc']}"))
        for group in evaluation["in_distribution"]["groups"]:
            label = f"[{name}] Fitzpatrick {group['group']}{' (est.)' if group['estimated'] else ''}"
            value = f"n={group['n']} ({group['n_real']}/{group['n_synthetic']}) acc {fmt(group['accuracy_at_0_5'])}"
            rows.append((label, value + (f" auc {fmt(group['roc_auc'])}" if group["roc_auc"] else ""), ""))
    speed = results.get("throughput")
    for threads, row in (speed or {}).get("by_threads", {}).items():
        where = f"{speed['device']}, {threads} thread(s), load {row['load_before']} -> {row['load_after']}"
        rows.append((f"scoring img/s, 64 px arrays, {threads}T", f"{row['scoring_arrays_img_per_s']:.0f} ({where})", ">= 300"))
        if "scoring_jpeg_paths_img_per_s" in row:
            rows.append((f"scoring img/s, 512 px JPEG files, {threads}T", f"{row['scoring_jpeg_paths_img_per_s']:.0f}", ""))
        rows.append((f"Grad-CAM img/s, {threads}T", f"{row['gradcam_img_per_s']:.0f}", ">= 20"))
    for key, road in results.get("road", {}).items():
        value = (
            f"{road['method_mean']:+.3f} vs random {road['random_mean']:+.3f} "
            f"(seeds {', '.join(f'{m:+.3f}' for m in road['random_seed_means'])}); "
            f"diff {road['difference_mean']:+.3f} [{road['difference_ci_low']:+.3f}, {road['difference_ci_high']:+.3f}], "
            f"n={road['n_images']}, all-zero maps {road['share_all_zero_maps']:.0%}, {road['seconds_per_image']:.2f} s/img"
        )
        rows.append((f"ROAD {key}", value, "Grad-CAM > random"))
    width = max(len(r[0]) for r in rows) if rows else 10
    for label, value, target in rows:
        print(f"{label:<{width}}  {value}{'   target ' + target if target else ''}")


def main() -> None:
    args = parse_args()
    stages = set(args.stages.split(","))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    results_path = args.out_dir / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results["load_at_start"] = load_average()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load {load_average()}", flush=True)

    reals, diagnoses = load_reals(args)
    samples, generator_info = {}, {}
    for family in FAMILIES:
        if "generators" in stages or (args.out_dir / f"{family}_samples.npz").exists():
            samples[family], generator_info[family] = generator_samples(family, reals, diagnoses, args)
    results["generators"] = generator_info
    datasets = {family: split_classes_separately(reals, fakes, args.seed) for family, fakes in samples.items()}

    detectors = {}
    for name, family in DETECTORS.items():
        if family not in datasets or name not in args.detectors.split(","):
            continue
        if "detectors" in stages or (args.out_dir / f"detector_{name}.pt").exists():
            dataset, split = datasets[family]
            manifests = {"real": hash_images(reals), family: hash_images(samples[family])}
            detectors[name], info = trained_detector(name, dataset, split, manifests, args)
            results.setdefault("detectors", {})[name] = info

    results_path.write_text(json.dumps(results, indent=1, default=str))
    if "evaluate" in stages:
        results["evaluation"] = {}
        for name, detector in detectors.items():
            dataset, split = datasets[DETECTORS[name]]
            test = dataset.subset(split.test)
            groups = phototype_groups(test.images)
            in_distribution = evaluate_detector(
                detector, test.images, test.labels, group_labels=groups, group_estimated=[True] * len(test),
                n_bootstrap=args.n_bootstrap, seed=args.seed,
            )
            cross = {}
            for family in FAMILIES:
                if family != DETECTORS[name] and family in datasets:
                    other, other_split = datasets[family]
                    other_test = other.subset(other_split.test)
                    evaluation = evaluate_detector(
                        detector, other_test.images, other_test.labels, robustness=False,
                        n_bootstrap=args.n_bootstrap, seed=args.seed,
                    )
                    cross[family] = asdict(evaluation.overall)
            results["evaluation"][name] = {"in_distribution": in_distribution.to_dict(), "cross_family": cross}
            probabilities = score_images(detector, test.images)
            overlays = save_overlays(detector, test.images, test.labels, probabilities, args.out_dir / f"overlays_{name}")
            results["evaluation"][name]["overlays"] = [asdict(o) for o in overlays]
            sha256 = save_detector(
                detector, args.out_dir / f"detector_{name}.pt", extra_metrics={"test": results["evaluation"][name]}
            )
            info = results["detectors"][name]
            info["sha256"] = sha256  # the stored checkpoint now carries its test evaluation
            (args.out_dir / f"detector_{name}.json").write_text(json.dumps(info, indent=1))

    results_path.write_text(json.dumps(results, indent=1, default=str))
    primary = detectors.get("gan")
    if primary is not None and "throughput" in stages:
        paths = None
        if not args.reals_npz:
            paths = [args.data_dir / name for name in pd.read_csv(args.data_dir / "labels.csv")["file"]]
        results["throughput"] = measure_throughput(primary, reals, paths)

    if primary is not None and "road" in stages:
        dataset, split = datasets["dcgan"]
        test = dataset.subset(split.test)
        half = args.road_images // 2
        chosen = np.r_[np.flatnonzero(test.labels == 0)[:half], np.flatnonzero(test.labels == 1)[:half]]
        chosen_labels = test.labels[chosen]
        checkpoint = args.out_dir / "detector_gan.pt"
        sha256 = json.loads((args.out_dir / "detector_gan.json").read_text())["sha256"]
        results["road"] = {}
        for target in ("synthetic", "predicted"):
            started = time.perf_counter()
            scores = road_in_processes(checkpoint, sha256, test.images[chosen], target, args)
            wall = round(time.perf_counter() - started, 1)
            # All chosen images, then each class on its own: an explanation of the synthetic logit on a real image
            # (where that logit is low) is a different question from one on a synthetic image.
            for subset, mask in (("", None), (" class=real", chosen_labels == 0), (" class=synthetic", chosen_labels == 1)):
                part = scores if mask is None else scores.subset(mask)
                road = summarise_road(
                    part, method="gradcam", target=target, percentiles=DEFAULT_PERCENTILES,
                    n_bootstrap=args.n_bootstrap, seed=args.seed,
                )
                results["road"][f"gradcam target={target}{subset}"] = {**asdict(road), "wall_s": wall,
                                                                       "workers": args.road_workers}
                print(f"ROAD target={target}{subset}: {road}", flush=True)

    results["load_at_end"] = load_average()
    results_path.write_text(json.dumps(results, indent=1, default=str))
    print_table(results)


if __name__ == "__main__":
    main()
