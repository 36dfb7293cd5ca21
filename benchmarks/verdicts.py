"""Verdict benchmark: does the audit give the right verdict on sets whose right verdict is known? (issue #16)

    .venv/bin/python -m benchmarks.verdicts [--seed 1] [--gan-minutes 3] [--vae-minutes 1] [--precision auto] [--out PATH]

isic-uda1 (557 dermoscopy images, de-duplicated by decoded pixels) is split at random (by --seed) into halves: A is
the reference and training set of every audit, B is real images no generator saw. From A, in this run: a DCGAN
trained for --gan-minutes (as the README's demo does) and a VAE for --vae-minutes, 300 samples each. Six audits at
the default thresholds, each with the VAE as its baseline set (the DCGAN for case e, which audits the VAE) and the
copy baseline on:

    a  B audited as "generated" against A       -> PASS fidelity, detectability, memorisation
    b  200 exact copies of A's images            -> FAIL memorisation
    c  200 transformed copies of A's images      -> FAIL memorisation   (flips, rotations, crops, resizing, colour,
                                                                          blur, JPEG; another seed than the audit's
                                                                          own positive control)
    d  the short-trained DCGAN's samples         -> FAIL fidelity and detectability
    e  the VAE's samples                         -> FAIL detectability
    f  pad-ufes-20 (412 real clinical photos)    -> FAIL fidelity, PASS memorisation
    s  B with melanoma and nevus swapped         -> FAIL utility
    p  pad-ufes-20 split by patient: one third   -> PASS utility (reference: the other two thirds; classes
       with its true labels audited against                          benign/malignant; phototype subgroups from
       the other two thirds                                            dermatologists' Fitzpatrick labels)
    g  B with a 2x upsampling trace (half size,   -> FAIL detectability (the trace the ViT's hard positive
       then bilinear back up), saved as PNG                          control uses)
    h  the same with a nearest-neighbour trace    -> FAIL detectability (another trace than the control's)
    i  the VAE's samples upscaled to 384 px       -> FAIL detectability (a baseline at the reference's scale)

Case a is also judged on utility (B's true labels: PASS). Cases s and p are judged on utility only and run without
the ViT cross-fit (not selected), baseline or copy baseline, which that criterion does not read.

Fidelity is the criterion fd_upper_ci_over_floor, detectability the one criterion over both tests (the cross-fitted
ViT on native crops and the cross-fitted feature probe; each test's AUCs are printed per case), memorisation
memorization_rate (calibrated copy detection), utility utility_gain (lower 95 % bound of the AUROC gain at 1
generated image per real training image, linear probe). An N/A where a verdict was expected counts as wrong. Prints case x criterion -> verdict beside the expected one, the false-PASS and
false-FAIL counts, each audit's wall time, and writes benchmarks/results/verdicts.json:
{"seed": ..., "cases": [{"case", "criterion", "expected", "verdict"}, ...]} (plus "details" with values, reasons and
controls). Everything runs in this process on a fresh embedded database (SQLite, Celery eager) in a temporary folder.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("DERMAUDIT_SHARED_DATA", REPO.parent / "shared" / "data"))
GROUPS = {"fidelity": ["fd_upper_ci_over_floor"], "detectability": ["detectability"],
          "memorisation": ["memorization_rate"], "utility": ["utility_gain"]}
CASES = {
    "a": ("one half of isic-uda1 against the other half", {"fidelity": "PASS", "detectability": "PASS", "memorisation": "PASS",
                                                           "utility": "PASS"}),
    "b": ("exact copies of training images", {"memorisation": "FAIL"}),
    "c": ("transformed copies of training images", {"memorisation": "FAIL"}),
    "d": ("short-trained DCGAN", {"fidelity": "FAIL", "detectability": "FAIL"}),
    "e": ("VAE baseline", {"detectability": "FAIL"}),
    "f": ("pad-ufes-20 photos (real, other domain)", {"fidelity": "FAIL", "memorisation": "PASS"}),
    "s": ("isic-uda1 half B, diagnoses swapped", {"utility": "FAIL"}),
    "p": ("pad-ufes-20 third vs two thirds, true labels", {"utility": "PASS"}),
    "g": ("B with a 2x upsampling trace (bilinear)", {"detectability": "FAIL"}),
    "h": ("B with another 2x upsampling trace (nearest)", {"detectability": "FAIL"}),
    "i": ("the VAE's samples upscaled to 384 px", {"detectability": "FAIL"}),
}
UTILITY_ONLY = {"s", "p"}  # no ViT, baseline or copy baseline: the utility criterion does not read them
DETECTABILITY_ONLY = {"g", "h", "i"}  # no copy baseline: memorisation is not judged there
PAD_MALIGNANT = {"BCC", "SCC", "MEL"}


def swapped(rows: list[dict]) -> list[dict]:
    exchange = {"melanoma": "nevus", "nevus": "melanoma"}
    return [{**row, "diagnosis": exchange.get(row["diagnosis"], row["diagnosis"])} for row in rows]


def pad_thirds(seed: int) -> tuple[list[dict], list[dict]]:
    """pad-ufes-20's rows with a benign_malignant column, split by patient at random: two thirds and one third."""
    with open(SHARED / "pad-ufes-20" / "labels.csv", newline="") as handle:
        rows = [{**row, "benign_malignant": "malignant" if row["diagnosis"] in PAD_MALIGNANT else "benign"}
                for row in csv.DictReader(handle)]
    patients = sorted({row["patient_id"] for row in rows})
    import numpy as np

    third = set(np.random.default_rng(seed + 5).permutation(patients)[: len(patients) // 3].tolist())
    return [r for r in rows if r["patient_id"] not in third], [r for r in rows if r["patient_id"] in third]


def write_folder(folder: Path, rows: list[dict], source: Path) -> Path:
    """A folder of the chosen images (copied from the shared set into the temporary folder) and their labels.csv."""
    (folder / "images").mkdir(parents=True)
    with open(folder / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            shutil.copyfile(source / row["file"], folder / row["file"])
            writer.writerow(row)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--gan-minutes", type=float, default=3.0)
    parser.add_argument("--vae-minutes", type=float, default=1.0)
    parser.add_argument("--copies", type=int, default=200)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "verdicts.json")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                        help="DERMAUDIT_FEATURE_PRECISION of the embedded deployment (auto: bf16 where the CPU has "
                             "native BF16, fp32 elsewhere)")
    args = parser.parse_args()
    os.environ["DERMAUDIT_FEATURE_PRECISION"] = args.precision
    work = Path(tempfile.mkdtemp(prefix="dermaudit-verdicts-"))
    os.environ["DERMAUDIT_VAR_DIR"] = str(work / "var")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "auditor.settings")
    for name in ("DATABASE_URL", "CELERY_BROKER_URL"):  # the embedded default
        os.environ.pop(name, None)
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    try:
        run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args, work: Path) -> None:
    import numpy as np
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import transaction
    from PIL import Image as PILImage

    from auditor.audits import pipeline
    from auditor.audits.tasks import run_audit_task
    from benchmarks.copy_detection import cpu_name
    from auditor.generation.runs import sample_to_image_set, train_generator
    from auditor.ingestion.importer import run_ingest
    from auditor.models import Audit, GeneratorRun, ImageSet, IngestJob, Membership, Organisation, Role
    from deepfake_detector.perturbations import upsampling_trace
    from metrics.copy_detection import make_transformed_copies
    from metrics.image_io import open_rgb, sha256_array

    started = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    organisation = Organisation.objects.create(name="Verdict benchmark")
    user = get_user_model().objects.create(username="verdicts")
    Membership.objects.create(user=user, organisation=organisation, role=Role.QUALITY)

    def ingest(name: str, kind: str, folder: Path) -> ImageSet:
        image_set = ImageSet.objects.create(organisation=organisation, name=name, kind=kind, created_by=user)
        job = IngestJob.objects.create(image_set=image_set, source=str(folder)[:500], source_paths=[str(folder)])
        run_ingest(job, [folder])
        return image_set

    isic = SHARED / "isic-uda1"
    with open(isic / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    first_of: dict[str, int] = {}
    for position, row in enumerate(rows):  # two known pixel-identical pairs: one image of each
        first_of.setdefault(sha256_array(np.asarray(open_rgb(isic / row["file"]))), position)
    distinct = np.array(sorted(first_of.values()))
    order = distinct[np.random.default_rng(args.seed).permutation(len(distinct))]
    half = len(order) // 2
    reference = ingest("isic-uda1 half A", "reference", write_folder(work / "A", [rows[i] for i in order[:half]], isic))
    held_out = ingest("isic-uda1 half B", "generated", write_folder(work / "B", [rows[i] for i in order[half:]], isic))
    print(f"isic-uda1: {len(rows)} images, {len(distinct)} distinct; halves A {reference.images.count()} (reference and "
          f"training) and B {held_out.images.count()} (never seen)", flush=True)

    def trained(kind: str, minutes: float, seed: int) -> ImageSet:
        run = GeneratorRun.objects.create(organisation=organisation, created_by=user, kind=kind, reference_set=reference,
                                          seed=seed, max_seconds=minutes * 60, config={"image_size": 64})
        run = train_generator(run)
        image_set = sample_to_image_set(run, args.samples, seed=seed, name=f"{kind} samples", user=user)
        print(f"{kind}: {run.message}", flush=True)
        return image_set

    dcgan = trained("dcgan", args.gan_minutes, args.seed)
    vae = trained("vae", args.vae_minutes, args.seed + 1)
    training = sorted(reference.images.all(), key=lambda image: image.sha256)
    chosen = sorted(np.random.default_rng(args.seed + 2).choice(len(training), size=min(args.copies, len(training)),
                                                                 replace=False).tolist())
    exact_folder = work / "exact" / "images"
    exact_folder.mkdir(parents=True)
    for index in chosen:
        shutil.copyfile(training[index].path, exact_folder / f"copy_{index:04d}{Path(training[index].path).suffix}")
    exact = ingest("exact copies of A", "generated", exact_folder)
    transformed_folder = work / "transformed" / "images"
    transformed_folder.mkdir(parents=True)
    for number, copy in enumerate(make_transformed_copies([training[i].path for i in chosen], args.seed + 3)):
        PILImage.fromarray(copy.image).save(transformed_folder / f"transformed_{number:04d}.png")
    transformed = ingest("transformed copies of A", "generated", transformed_folder)
    pad = ingest("pad-ufes-20", "generated", SHARED / "pad-ufes-20")
    half_b_rows = [rows[i] for i in order[half:]]
    extra_sets: dict[str, ImageSet] = {}
    held_out_swapped = ingest("isic-uda1 half B, swapped", "generated",
                              write_folder(work / "B-swapped", swapped(half_b_rows), isic))
    for case, mode in (("g", "bilinear"), ("h", "nearest")):  # real content, a generator's trace, saved as PNG
        folder = work / f"traced-{mode}" / "images"
        folder.mkdir(parents=True)
        for row in half_b_rows:
            traced = upsampling_trace(np.asarray(open_rgb(isic / row["file"])), mode)
            PILImage.fromarray(traced).save(folder / f"{Path(row['file']).stem}.png")
        extra_sets[case] = ingest(f"isic-uda1 half B, {mode} upsampling trace", "generated", folder)
    folder = work / "vae-upscaled" / "images"
    folder.mkdir(parents=True)
    for image in sorted(vae.images.all(), key=lambda image: image.sha256):
        PILImage.open(image.path).convert("RGB").resize((384, 384), PILImage.Resampling.BICUBIC).save(
            folder / f"{image.sha256[:16]}.png")
    extra_sets["i"] = ingest("VAE samples upscaled to 384 px", "generated", folder)
    pad_two_thirds, pad_third = pad_thirds(args.seed)
    pad_reference = ingest("pad-ufes-20 two thirds", "reference",
                           write_folder(work / "pad-reference", pad_two_thirds, SHARED / "pad-ufes-20"))
    pad_held_out = ingest("pad-ufes-20 third", "generated",
                          write_folder(work / "pad-third", pad_third, SHARED / "pad-ufes-20"))

    generated = {"a": held_out, "b": exact, "c": transformed, "d": dcgan, "e": vae, "f": pad, "s": held_out_swapped,
                 "p": pad_held_out, **extra_sets}
    references = {"p": pad_reference}
    utility_criteria = {"p": {"utility_gain": {"label": "benign_malignant"}}}
    outcome, details, walls, precisions, aucs = [], [], {}, set(), {}
    for case in args.cases:
        description, expected = CASES[case]
        baseline = None if case in UTILITY_ONLY else dcgan if case == "e" else vae
        criteria = dict(utility_criteria.get(case, {}))
        if case in UTILITY_ONLY:
            criteria["detectability"] = {"tests": ["probe"]}
        audit = Audit.objects.create(organisation=organisation, name=f"case {case}: {description}", created_by=user,
                                     generated_set=generated[case], reference_set=references.get(case, reference),
                                     baseline_set=baseline,
                                     include_copy_baseline=case not in UTILITY_ONLY | DETECTABILITY_ONLY,
                                     seed=args.seed, target_phototype={"kind": "uniform"}, criteria=criteria)
        clock = time.perf_counter()
        with transaction.atomic():
            pipeline.start_audit(audit, enqueue=lambda audit_id: run_audit_task.delay(audit_id))
        audit.refresh_from_db()
        walls[case] = time.perf_counter() - clock
        precisions.add(audit.feature_precision)
        if audit.status != Audit.Status.SUCCEEDED:
            raise SystemExit(f"case {case}: audit {audit.status}: {audit.error}")
        rows_by_name = {row["name"]: row for row in audit.results.get(stage="report").data["criteria"]}
        for group, verdict_expected in expected.items():
            for name in GROUPS[group]:
                row = rows_by_name[name]
                outcome.append({"case": case, "criterion": name, "expected": verdict_expected, "verdict": row["status"]})
                details.append({"case": case, "criterion": name, "value": row["value"], "ci": row["ci"],
                                "reason": row["reason"],
                                "controls": [{k: c[k] for k in ("kind", "label", "value", "requirement", "ok")}
                                             for c in row["controls"]]})
        print(f"case {case} ({description}): {walls[case]:.0f} s: "
              + ", ".join(f"{o['criterion']} {o['verdict']}" for o in outcome if o["case"] == case), flush=True)
        tests = (audit.results.get(stage="detectability").data or {})
        auc_text = []
        for test in ("vit", "probe"):
            for key in ("audited", "negative_control", "positive_control"):
                item = (tests.get(test) or {}).get(key) or {}
                if item.get("auc") is not None:
                    auc_text.append(f"{test} {key.replace('_control', '')} {item['auc']:.3f}")
        aucs[case] = auc_text
        print("  detectability AUCs: " + ", ".join(auc_text), flush=True)
        utility = (audit.results.get(stage="utility").data or {}).get("result")
        if utility and "utility" in expected:
            by_phototype = [row for row in utility["subgroups"] if row["field"].startswith("phototype")]
            print("  utility by phototype (" + (by_phototype[0]["field"] if by_phototype else "none") + "): "
                  + "; ".join(f"{row['value']} n={row['n']} AUROC {row['real_only']['auroc']['value'] or float('nan'):.3f}"
                              f" gain {row['gain']['auroc']['value'] or float('nan'):+.3f}"
                              f"{' (under-powered)' if row['underpowered'] else ''}" for row in by_phototype), flush=True)

    print(f"\nVerdicts at the default thresholds, seed {args.seed}; {cpu_name()}, {os.cpu_count()} CPUs; "
          f"DCGAN {args.gan_minutes:g} min, VAE {args.vae_minutes:g} min; ViT on native crops, ~{settings.DERMAUDIT_CROSSFIT_STEPS} "
          f"steps (at most {settings.DERMAUDIT_CROSSFIT_EPOCHS} epochs) x {settings.DERMAUDIT_CROSSFIT_FOLDS} folds; feature precision {', '.join(sorted(precisions))} "
          f"(--precision {args.precision})")
    header = f"| {'case':<46} | {'criterion':<22} | {'expected':<8} | {'verdict':<7} | {'value':>7} | right |"
    print(header)
    print("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    for row, detail in zip(outcome, details):
        value = detail["value"]
        print(f"| {row['case'] + ' ' + CASES[row['case']][0]:<46} | {row['criterion']:<22} | {row['expected']:<8} | "
              f"{row['verdict']:<7} | {value if value is not None else float('nan'):>7.3f} | "
              f"{'yes' if row['verdict'] == row['expected'] else 'NO'} |")
        if row["verdict"] == "N/A":
            print(f"|   N/A because: {detail['reason']}")
    false_pass = sum(r["verdict"] == "PASS" and r["expected"] == "FAIL" for r in outcome)
    false_fail = sum(r["verdict"] == "FAIL" and r["expected"] == "PASS" for r in outcome)
    missing = sum(r["verdict"] == "N/A" for r in outcome)
    print(f"\nwrong verdicts: {false_pass + false_fail + missing} of {len(outcome)} (false PASS {false_pass}, false FAIL "
          f"{false_fail}, N/A where a verdict was expected {missing}); audit wall times: "
          + ", ".join(f"{case} {wall:.0f} s" for case, wall in walls.items())
          + f"; whole run {time.perf_counter() - started:.0f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"seed": args.seed, "feature_precision": sorted(precisions), "cases": outcome,
                                    "details": details, "detectability_aucs": aucs,
                                    "audit_wall_s": walls}, indent=1) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
