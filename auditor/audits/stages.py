"""The set-level audit stages. Each takes an Audit and returns JSON for its AuditResult."""
from __future__ import annotations

from collections import Counter

import numpy as np
from PIL import Image as PILImage

from auditor.audits.copies import copy_stage
from auditor.audits.detectability import detectability_stage
from auditor.audits.detector_stages import detector_stage, explanations_stage
from auditor.audits.images import (
    artefact_folder,
    features_of,
    ordered_images,
    phototype_groups,
    phototype_of,
    phototype_sources,
    reference_halves,
    seeded,
    set_features,
)
from auditor.audits.utility import utility_stage
from auditor.models import Audit, Image
from auditor.models.storage import media_name
from metrics.diversity import compute_ms_ssim_diversity
from metrics.feature_suite import compute_feature_metrics
from metrics.features import FeatureSet
from metrics.kid import compute_kernel_distance
from metrics.memorization import MemorizationResult, compute_memorization
from metrics.phototype_balance import score_balance
from metrics.phototype_validation import agreement_report
from metrics.precision_recall import compute_precision_recall
from metrics.subgroups import compute_by_matched_subgroup, recommended_min_n

MIN_LABELLED_FOR_VALIDATION = 30
MIN_HALF = 20  # reference images per half for the negative control


def _target(audit: Audit) -> str | dict:
    spec = audit.target_phototype or {}
    kind = spec.get("kind", "uniform")
    if kind == "custom":
        return {int(k): float(v) for k, v in spec["distribution"].items()}
    return kind


def estimator_validation(reference_images) -> dict:
    """Agreement of the pixel estimate with dermatologists' labels on the reference set, per acquisition type."""
    by_acquisition: dict[str, list] = {}
    for image in reference_images:
        if image.fitzpatrick and image.phototype_method:
            by_acquisition.setdefault(image.acquisition or "unknown", []).append(image)
    reports = {}
    for acquisition, images in by_acquisition.items():
        if len(images) < MIN_LABELLED_FOR_VALIDATION:
            reports[acquisition] = {"validated": False, "n_labelled": len(images),
                                    "gate": f"only {len(images)} labelled images (need {MIN_LABELLED_FOR_VALIDATION})"}
            continue
        report = agreement_report(
            [i.fitzpatrick for i in images], [i.fitzpatrick_estimate for i in images],
            [i.extra_labels.get("patient_id") or i.pk for i in images],
            estimator=images[0].phototype_method, acquisition=acquisition, seed=0, n_boot=500, n_permutations=200,
        )
        reports[acquisition] = report.to_dict()
    return reports


def phototype_stage(audit: Audit) -> dict:
    generated, _ = set_features(audit, audit.generated_set)
    reference, _ = set_features(audit, audit.reference_set)
    validation = estimator_validation(reference)
    estimated_acquisitions = {i.acquisition or "unknown" for i in generated if phototype_of(i)[1] == "estimate"}
    validated = all(validation.get(a, {}).get("validated", False) for a in estimated_acquisitions)
    groups = phototype_groups(generated)
    result = {
        "sources": phototype_sources(generated),
        "reference_sources": phototype_sources(reference),
        "estimator_validation": validation,
        "estimates_validated": validated,
        "may_drive_pass_fail": validated,
        "counts": dict(Counter(groups)),
        "reference_counts": dict(Counter(phototype_groups(reference))),
        "undetermined_reasons": dict(Counter(i.phototype_note.split(":")[0] for i in generated if i.phototype_note)),
        "target": audit.target_phototype or {"kind": "uniform"},
    }
    try:
        balance = score_balance(
            groups, _target(audit), reference=phototype_groups(reference) if _target(audit) == "reference" else None,
            n_boot=1000, seed=seeded(audit, 40),
        )
        result["balance"] = balance.to_dict()
        result["controls"] = phototype_controls(audit, balance)
    except ValueError as exc:
        result["balance"] = None
        result["balance_error"] = str(exc)
    return result


def phototype_controls(audit: Audit, balance) -> dict:
    """The same score on two sets of the audited set's size: one drawn from the target mix (must pass) and one
    all of the phototype the target weights least (must fail). They show that the threshold separates a balanced
    from an unbalanced set at this sample size."""
    n = sum(balance.counts.values())
    types = sorted(balance.target)
    target = np.array([balance.target[t] for t in types], dtype=np.float64)
    rng = np.random.default_rng(seeded(audit, 41))
    drawn = rng.multinomial(n, target / target.sum())
    weights = {t: balance.target[t] for t in types}
    sample = score_balance({t: int(c) for t, c in zip(types, drawn)}, weights, n_boot=1000, seed=seeded(audit, 42))
    rarest = min(types, key=lambda t: (balance.target[t], t))
    single = score_balance({t: (n if t == rarest else 0) for t in types}, weights, n_boot=1000, seed=seeded(audit, 43))
    return {"target_sample": {**sample.to_dict(), "label": f"{n} images drawn from the target mix"},
            "single_type": {**single.to_dict(), "label": f"{n} images, all phototype {rarest}"}}


def _suite(audit: Audit, reference: FeatureSet, candidate: FeatureSet, offset: int) -> dict:
    report = compute_feature_metrics(reference, candidate, seed=seeded(audit, offset), allow_rank_deficient=True)
    data = report.to_dict()
    data["memorization"].pop("nearest_feature_index", None)  # per-image arrays: kept out of the summary
    data["memorization"].pop("nearest_feature_distance", None)
    data["memorization"].pop("flagged", None)
    return data


def _subgroup_breakdown(audit: Audit, ref_images, reference: FeatureSet, gen_images, generated: FeatureSet) -> dict:
    ref_groups, gen_groups = phototype_groups(ref_images), phototype_groups(gen_images)
    k = 5

    def prdc(ref_rows, gen_rows):
        return compute_precision_recall(reference.select(ref_rows), generated.select(gen_rows), seed=seeded(audit, 30), k=k,
                                        n_bootstrap=200)

    def kid(ref_rows, gen_rows):
        return compute_kernel_distance(reference.select(ref_rows), generated.select(gen_rows), seed=seeded(audit, 31))

    return {
        "prdc": compute_by_matched_subgroup(ref_groups, gen_groups, prdc, min_n=recommended_min_n("prdc", k=k),
                                            metric_name="precision/recall (k=5)").to_dict(),
        "kid": compute_by_matched_subgroup(ref_groups, gen_groups, kid, min_n=recommended_min_n("kid"),
                                           metric_name="KID").to_dict(),
    }


def copy_baseline_images(audit: Audit, n: int) -> list[Image]:
    """Training (else reference) images submitted as if generated: the positive control for memorisation."""
    pool = ordered_images(audit.training_set or audit.reference_set)
    rng = np.random.default_rng(seeded(audit, 50))
    chosen = sorted(rng.choice(len(pool), size=min(n, len(pool)), replace=False))
    return [pool[i] for i in chosen]


def fidelity_stage(audit: Audit) -> dict:
    ref_images, reference = set_features(audit, audit.reference_set)
    gen_images, generated = set_features(audit, audit.generated_set)
    result = {
        "extractor": generated.provenance(),
        "generated": _suite(audit, reference, generated, 10),
        "ms_ssim_diversity": {
            "generated": compute_ms_ssim_diversity([i.path for i in gen_images], seed=seeded(audit, 11), n_pairs=200,
                                                   size=128, n_bootstrap=500).to_dict(),
            "reference": compute_ms_ssim_diversity([i.path for i in ref_images], seed=seeded(audit, 12), n_pairs=200,
                                                   size=128, n_bootstrap=500).to_dict(),
        },
        "by_phototype": _subgroup_breakdown(audit, ref_images, reference, gen_images, generated),
    }
    first, second = reference_halves(audit, ref_images)
    if min(len(first), len(second)) >= MIN_HALF:
        # Negative control: one random half of the reference audited as if generated against the other half.
        result["negative_control"] = _suite(audit, reference.select(first), reference.select(second), 22)
        result["negative_control"]["n_per_half"] = [len(first), len(second)]
    if audit.baseline_set_id:
        _, baseline = set_features(audit, audit.baseline_set)
        result["baseline"] = _suite(audit, reference, baseline, 20)
        result["baseline_name"] = audit.baseline_set.name
    if audit.include_copy_baseline:
        copies = copy_baseline_images(audit, len(gen_images))
        result["copy_baseline"] = _suite(audit, reference, features_of(copies, audit), 21)
    return result


def _pair_montage(audit: Audit, pairs: list[tuple[Image, Image, str]]) -> list[dict]:
    """Side-by-side PNGs (generated | nearest training image) for the report."""
    folder = artefact_folder(audit, "memorization")
    records = []
    for rank, (generated, training, caption) in enumerate(pairs):
        left = PILImage.open(generated.path).convert("RGB")
        right = PILImage.open(training.path).convert("RGB")
        height = 192
        left = left.resize((max(1, left.width * height // left.height), height), PILImage.Resampling.LANCZOS)
        right = right.resize((max(1, right.width * height // right.height), height), PILImage.Resampling.LANCZOS)
        canvas = PILImage.new("RGB", (left.width + right.width + 8, height), (255, 255, 255))
        canvas.paste(left, (0, 0))
        canvas.paste(right, (left.width + 8, 0))
        path = folder / f"pair_{rank:02d}.png"
        canvas.save(path)
        records.append({"path": media_name(path), "caption": caption, "generated": generated.original_name,
                        "training": training.original_name})
    return records


def _memorization(audit: Audit, training_images, training: FeatureSet, candidate_images, candidate: FeatureSet) -> MemorizationResult:
    return compute_memorization(training, candidate, reference_images=[i.path for i in training_images],
                                generated_images=[i.path for i in candidate_images], seed=seeded(audit, 80))


def memorization_stage(audit: Audit) -> dict:
    """The calibrated copy rule (auditor/audits/copies.py) carries the verdict; AuthPct in feature space stays a
    descriptive number beside its rate on held-out real images."""
    training_set = audit.training_set or audit.reference_set
    training_images, training = set_features(audit, training_set)
    gen_images, generated = set_features(audit, audit.generated_set)
    ref_images = ordered_images(audit.reference_set)
    copies = copy_stage(audit, training_images, gen_images, ref_images)
    memo = _memorization(audit, training_images, training, gen_images, generated)
    training_by_hash = {image.sha256: image for image in training_images}
    generated_by_hash = {image.sha256: image for image in gen_images}
    pairs = [(generated_by_hash[p["generated_sha256"]], training_by_hash[p["training_sha256"]],
              f"copy: score {p['score']:.3f} > threshold {copies['threshold']:.3f}, {p['transform']}")
             for p in copies["flagged"][:6]]
    if not pairs:  # nothing flagged: still show the closest pairs, so a reader can judge
        pairs = [(generated_by_hash[p["generated_sha256"]], training_by_hash[p["training_sha256"]],
                  f"closest pair, copy score {p['score']:.3f} ≤ threshold {copies['threshold']:.3f} (not a copy)")
                 for p in copies["closest"]]
    data = memo.to_dict()
    for key in ("nearest_feature_index", "nearest_feature_distance", "nearest_pixel_index", "nearest_pixel_distance"):
        data.pop(key, None)
    data["flagged"] = data["flagged"][:50]
    result = {"training_set": training_set.name, "training_is_reference": audit.training_set_id is None,
              "copies": copies, "generated": data, "pairs": _pair_montage(audit, pairs)}
    if audit.include_copy_baseline:
        copy_images = copy_baseline_images(audit, len(gen_images))
        copy = _memorization(audit, training_images, training, copy_images, features_of(copy_images, audit))
        result["copy_baseline"] = {"memorized_fraction": copy.memorized_fraction, "memorized_ci": copy.to_dict()["memorized_ci"],
                                   "n": copy.n_generated}
    return result


def report_stage(audit: Audit) -> dict:
    from auditor.reporting.criteria import evaluate_criteria
    from auditor.reporting.issuing import issue_draft

    report = issue_draft(audit)
    return {"report": str(report.pk), "version": report.version, "pdf_sha256": report.pdf_sha256,
            "criteria": evaluate_criteria(audit)}


STAGE_FUNCTIONS = {
    "fidelity": fidelity_stage,
    "phototype": phototype_stage,
    "utility": utility_stage,
    "memorization": memorization_stage,
    "detectability": detectability_stage,
    "detector": detector_stage,
    "explanations": explanations_stage,
    "report": report_stage,
}
