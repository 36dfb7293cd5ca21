"""Fitness for purpose on isic-uda1 (melanoma vs nevus): the utility test's figures and timings, probe beside network.

    .venv/bin/python -m benchmarks.utility [--gan-minutes 3] [--samples 1000] [--finetune-epochs 5] [--skip-finetune]

A class-conditional DCGAN (diagnosis) is trained on all of isic-uda1 for --gan-minutes and sampled with its classes;
then the utility test (metrics.utility) runs on the 555 labelled real images against:

- the samples with the classes they were drawn for (what a user would upload);
- the same samples with their labels permuted at random (a shuffled-label set: the issue measured it as no positive
  control, -0.002 AUROC);
- the same samples with their labels swapped (the positive control the audit uses);

each with the linear probe (5 folds x 5 repeats, the curve 0.25-4) and, unless --skip-finetune, the fine-tuned
EfficientNet-Lite0 tail (5 folds x 1 repeat, ratio 1; trunk activations computed once per image). Every run also
carries its held-out-real curve (the negative control: real images with their true labels) and TSTR. Prints the CPU,
one row per (classifier, set) with TRTR, TSTR, the gain at 1:1 and at 4:1 with the bootstrap CI, the held-out-real
gain at 1:1, label consistency, and the wall time of the test itself (features and activations are computed before
and timed on their own line). Numbers are for this machine: compare rows of one run, never across machines.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("DERMAUDIT_SHARED_DATA", REPO.parent / "shared" / "data"))


def cpu_summary() -> str:
    sys.path.insert(0, str(REPO))
    from benchmarks.features import cpu_summary as summary

    return summary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gan-minutes", type=float, default=3.0)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--finetune-epochs", type=int, default=5)
    parser.add_argument("--skip-finetune", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from auditor.generation import baselines
    from metrics.features import extract_features, extract_features_from_arrays
    from metrics.torch_threads import intra_op_threads
    from metrics.utility import LinearProbe, UtilityDesign, evaluate_utility
    from metrics.utility.finetune import FineTunedEffNet

    print(cpu_summary(), flush=True)
    with open(SHARED / "isic-uda1" / "labels.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["diagnosis"] in ("melanoma", "nevus")]
    paths = [SHARED / "isic-uda1" / row["file"] for row in rows]
    labels, groups = [row["diagnosis"] for row in rows], [row["isic_id"] for row in rows]
    sex = [row["sex"] or None for row in rows]

    started = time.perf_counter()
    encoded, names = baselines.encode_class_labels(labels)
    images = baselines.load_training_images([str(p) for p in paths], image_size=64, labels=encoded, class_names=names,
                                            manifest_sha256="benchmark")
    checkpoint = baselines.train(baselines.TrainConfig(kind="cdcgan", max_seconds=args.gan_minutes * 60, seed=args.seed),
                                 images)
    batch = baselines.sample(checkpoint, args.samples, seed=args.seed + 1)
    generated_labels = np.array([names[int(i)] for i in batch.labels])
    print(f"class-conditional DCGAN: {checkpoint.steps} steps in {checkpoint.elapsed_seconds:.0f} s; "
          f"{args.samples} samples: {dict(zip(*np.unique(generated_labels, return_counts=True)))}", flush=True)
    rng = np.random.default_rng(args.seed + 2)
    variants = {"as drawn": generated_labels, "labels permuted": rng.permutation(generated_labels),
                "labels swapped": np.where(generated_labels == "melanoma", "nevus", "melanoma")}

    with tempfile.TemporaryDirectory() as cache, intra_op_threads(1):
        clock = time.perf_counter()
        real = extract_features(paths, cache_dir=cache, precision="fp32").features
        fake = extract_features_from_arrays(batch.images, cache_dir=cache, precision="fp32").features
        print(f"features (EfficientNet-Lite0, fp32): {time.perf_counter() - clock:.1f} s", flush=True)
        inputs = {"linear probe": (LinearProbe(), real, fake, UtilityDesign())}
        if not args.skip_finetune:
            network = FineTunedEffNet(epochs=args.finetune_epochs)
            clock = time.perf_counter()
            real_a = network.activations(paths)
            fake_a = network.activations(list(batch.images))
            print(f"trunk activations (224 px, 4 flips, {len(paths) + len(fake_a)} images): "
                  f"{time.perf_counter() - clock:.1f} s", flush=True)
            inputs["fine-tuned network"] = (network, real_a, fake_a, UtilityDesign(repeats=1, ratios=(1.0,)))
        print(f"\nisic-uda1 melanoma vs nevus, {len(rows)} real images; torch threads 1; set-up "
              f"{time.perf_counter() - started:.0f} s")
        header = (f"| {'classifier':<18} | {'generated labels':<16} | {'TRTR AUROC':>10} | {'TSTR AUROC':>10} | "
                  f"{'gain 1:1 [95% CI]':<26} | {'gain 4:1':>8} | {'real 1:1':>8} | {'swap ctl':>8} | "
                  f"{'labels agree':>12} | {'test s':>6} |")
        print(header)
        print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
        for name, (classifier, real_x, fake_x, design) in inputs.items():
            for variant, fake_labels in variants.items():
                clock = time.perf_counter()
                result = evaluate_utility(real_x, labels, groups, fake_x, fake_labels, subgroups={"sex": sex},
                                          classifier=classifier, design=design, seed=args.seed)
                seconds = time.perf_counter() - clock
                by_key = {c.key: c for c in result.conditions}
                gain = by_key["augmented@1"].gain["auroc"]
                four = by_key.get("augmented@4")
                print(f"| {name:<18} | {variant:<16} | {by_key['real_only'].figures['auroc'].value:>10.3f} | "
                      f"{by_key['synthetic_only'].figures['auroc'].value:>10.3f} | "
                      f"{gain.value:+.3f} [{gain.ci.low:+.3f}, {gain.ci.high:+.3f}]{'':<4} | "
                      f"{four.gain['auroc'].value if four else float('nan'):>+8.3f} | "
                      f"{result.decision.negative_control_gain:>+8.3f} | {result.decision.positive_control_gain:>+8.3f} | "
                      f"{result.label_consistency['synthetic_mean']:>12.3f} | {seconds:>6.1f} |", flush=True)


if __name__ == "__main__":
    main()
