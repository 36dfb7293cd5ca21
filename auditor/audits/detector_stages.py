"""The detector screen (a detector trained on other generators, when one is chosen: descriptive, never a verdict) and
the explanations of the audit's own cross-fitted detector (Grad-CAM maps and their ROAD faithfulness)."""
from __future__ import annotations

import numpy as np
from django.conf import settings

import deepfake_detector as dd
from auditor.audits.detectability import native_windows
from auditor.audits.images import artefact_folder, ordered_images, seeded
from auditor.detection.runs import _phototype, load, standardised, store_scores
from auditor.models import Audit, DetectorRun, Image
from auditor.models.storage import media_name, media_path
from auditor.models.training import TrainingStatus
from deepfake_detector.crops import tiles
from deepfake_detector.evaluate import roc_points
from deepfake_detector.explain import save_window_overlays, select_confidence_extremes


def ensure_detector(audit: Audit) -> DetectorRun | None:
    """The detector chosen for the screen. An audit no longer trains one against its baseline: a detector of other
    generators says nothing about realism, only the cross-fitted detectors of the detectability stage can carry a
    verdict (auditor/audits/detectability.py)."""
    return audit.detector if audit.detector_id else None


def _test_split(audit: Audit, run: DetectorRun) -> tuple[list[Image], list[Image], bool]:
    """Generated images and the real images the detector never saw (its test split), if recorded."""
    generated = ordered_images(audit.generated_set)
    held_out = set(run.evaluation.get("test_image_sha256", []))
    reference = [i for i in ordered_images(audit.reference_set) if i.sha256 in held_out]
    optimistic = False
    if len(reference) < 10:  # a detector trained elsewhere: every reference image, flagged as optimistic
        reference, optimistic = ordered_images(audit.reference_set), True
    return generated, reference, optimistic


def _inputs(audit: Audit):
    run = ensure_detector(audit)
    if run is None:
        return None
    if run.status != TrainingStatus.SUCCEEDED:
        raise RuntimeError(f"detector run {run.pk} is {run.status}: {run.message}")
    generated, reference, optimistic = _test_split(audit, run)
    labels = np.array([0] * len(reference) + [1] * len(generated), dtype=np.int64)
    return run, load(run), generated, reference, optimistic, labels


def detector_stage(audit: Audit) -> dict:
    inputs = _inputs(audit)
    if inputs is None:
        return {"available": False, "reason": "no detector of other generators chosen for the screen; detectability is "
                                              "measured by detectors trained on this set (section 9)"}
    run, detector, generated, reference, optimistic, labels = inputs
    images = standardised(reference + generated, detector.preprocessing)
    phototypes = [_phototype(i) for i in reference + generated]
    evaluation = dd.evaluate_detector(detector, images, labels, group_labels=[p[0] for p in phototypes],
                                      group_estimated=[p[1] for p in phototypes], robustness=True, n_bootstrap=500,
                                      seed=seeded(audit, 61))
    probabilities = dd.score_images(detector, images)
    store_scores(run, reference + generated, probabilities)  # per-image results; the explanations stage reuses them
    return {
        "available": True, "detector_run": run.pk, "detector_sha256": run.checkpoint_sha256,
        "preprocessing": detector.preprocessing.name, "trained_on": run.evaluation.get("training", {}),
        "in_distribution": {k: run.evaluation.get(k) for k in ("overall", "robustness_auc", "temperature")},
        "reference_is_held_out": not optimistic, "n_generated": len(generated), "n_reference": len(reference),
        "evaluation": evaluation.to_dict(),
        "mean_probability_generated": float(probabilities[labels == 1].mean()),
        "mean_probability_reference": float(probabilities[labels == 0].mean()),
        "roc": roc_points(labels, probabilities),
    }


def _fold_inputs(audit: Audit):
    """Fold 0 of the audit's own cross-fitted ViT and the images it never trained on (its test fold)."""
    vit = ((audit.results.filter(stage="detectability").values_list("data", flat=True).first() or {}).get("vit") or {})
    audited, models = vit.get("audited") or {}, vit.get("fold_models") or []
    if not models or not audited.get("fold_of"):
        return None
    detector = dd.load_detector(media_path(models[0]["path"]), expected_sha256=models[0]["sha256"], device="cpu")
    everything = ordered_images(audit.reference_set) + ordered_images(audit.generated_set)
    fold_of = np.asarray(audited["fold_of"])
    labels_all = np.array([0] * audited["n_real"] + [1] * audited["n_synthetic"], dtype=np.int64)
    if len(fold_of) != len(everything):
        raise RuntimeError("the detectability stage's folds do not match the audit's images")
    rows = np.flatnonzero(fold_of == 0)
    return detector, [everything[i] for i in rows], labels_all[rows], np.asarray(audited["scores"])[rows]


def explanations_stage(audit: Audit) -> dict:
    inputs = _fold_inputs(audit)
    if inputs is None:
        return {"available": False, "reason": "no cross-fitted detector (the detectability stage's ViT did not run)"}
    detector, everything, labels, probabilities = inputs
    # ROAD on the generated images, the ones whose synthetic logit the maps explain. On real images the logit is low,
    # half the maps are all zero, and ROAD's smoothing imputation itself can look synthetic to the detector
    # (benchmarks/detector.py, per class: no different from random with the default NPR input, below random with
    # pixel input; clearly above random on synthetic images with both).
    rng = np.random.default_rng(seeded(audit, 70))
    generated_rows = np.flatnonzero(labels == 1)
    chosen = np.sort(rng.choice(generated_rows, size=min(settings.DERMAUDIT_ROAD_IMAGES, len(generated_rows)), replace=False))
    extremes = [index for index, _, _ in select_confidence_extremes(labels, probabilities, per_class=2)]
    # Only the images Grad-CAM explains are decoded; the other rows stay blank and are never read.
    size = detector.preprocessing.size
    needed = sorted(set(chosen.tolist()) | set(extremes))
    if detector.preprocessing.native:
        # A map per tile, laid out over the whole window; ROAD on one seeded tile of each chosen image (a tile is
        # what the network decides on; the image's score is the mean of its tiles').
        windows = np.empty(len(everything), dtype=object)
        windows[needed] = list(native_windows([everything[i].path for i in needed], detector.preprocessing))
        overlays = save_window_overlays(detector, windows, labels, probabilities, artefact_folder(audit, "gradcam"),
                                        per_class=2, method="gradcam", target="synthetic")
        tile_rng = np.random.default_rng(seeded(audit, 72))
        road_inputs = np.stack([(lambda t: t[tile_rng.integers(len(t))])(tiles(windows[i], size)) for i in chosen])
    else:
        images = np.zeros((len(everything), size, size, 3), dtype=np.uint8)
        images[needed] = standardised([everything[i] for i in needed], detector.preprocessing)
        overlays = dd.save_overlays(detector, images, labels, probabilities, artefact_folder(audit, "gradcam"),
                                    per_class=2, method="gradcam", target="synthetic")
        road_inputs = images[chosen]
    road = dd.road_faithfulness(detector, road_inputs, method="gradcam", target="synthetic", n_bootstrap=500,
                                random_seeds=(0, 1, 2), seed=seeded(audit, 71))
    return {
        "available": True, "method": "Grad-CAM (pytorch-grad-cam), target layer blocks[-1].norm1, class token dropped",
        "detector": "the audit's own cross-fitted ViT, fold 0, on the images of its test fold (never trained on them)"
                    + ("; maps of every 64-px tile laid over the whole window, ROAD on one seeded tile per image"
                       if detector.preprocessing.native else ""),
        "n_explained_fold": len(everything),
        "target": "synthetic logit", "road_images": "generated",
        "overlays": [{"path": media_name(o.path), "label": "synthetic" if o.label else "real", "probability_synthetic": o.probability_synthetic,
                      "rank": o.rank, "caption": f"{'synthetic' if o.label else 'real'}, {o.rank.replace('_', ' ')}, "
                                                 f"P(synthetic) = {o.probability_synthetic:.3f}"} for o in overlays],
        "road": road.__dict__ if not hasattr(road, "to_dict") else road.to_dict(),
    }
