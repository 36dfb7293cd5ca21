"""The detectability stage: can a classifier trained on *this* generated set tell it from the reference?

Two classifier two-sample tests, each cross-fitted (every image scored only by a model that never trained on it) and
each run three times in the same audit, so that the one detectability verdict comes with each test's controls:

- audited: the generated set against the reference set;
- negative control: one random half of the reference (whole lesions) against the other half — a test that
  "detects" real images here is fitting noise, and the criterion is N/A;
- positive control, as hard as what users bring, at this audit's resolution: for the ViT, which reads the pixels at
  their own scale (native 64-px crops, deepfake_detector/crops.py), the other half of the reference carrying a
  generator's 2x upsampling trace (half size, then bilinear back up); for the probe, which reads features, the
  baseline generator's images. A test that does not find its control at AUC >= 0.9 cannot support a PASS.

The probe (metrics/detectability.py) reads the features the audit already cached: seconds. The ViT
(deepfake_detector/crossfit.py) trains per fold for a fixed number of optimiser steps (DERMAUDIT_CROSSFIT_STEPS,
at most DERMAUDIT_CROSSFIT_EPOCHS epochs), so that a re-run gives the same models; the audited set's fold models are
saved for the explanations stage, which explains each image with the model that never saw it.
"""
from __future__ import annotations

import hashlib
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from django.conf import settings
from threadpoolctl import threadpool_limits

import deepfake_detector as dd
from auditor.audits.images import artefact_folder, lesion_group, ordered_images, reference_halves, seeded, set_features
from auditor.models import Audit, Image
from auditor.models.storage import media_name
from deepfake_detector.crossfit import (
    AUDIT_NATIVE_AUGMENTATION,
    AUDIT_NATIVE_MODEL,
    AUDIT_NATIVE_PREPROCESSING,
    crossfit_detector,
)
from deepfake_detector.data import as_windows
from deepfake_detector.perturbations import upsampling_trace
from metrics.image_io import open_rgb
from metrics.detectability import probe_detectability
from metrics.results import BLAS_THREADS, InsufficientSamplesError

PER_IMAGE = ("fold_of", "scores")
HARD_CONTROL_TRACE = "bilinear"  # the verdict benchmark's case h uses another ("nearest"), so the control is no twin


def _summary(data: dict, keep_rows: bool = False) -> dict:
    return data if keep_rows else {k: v for k, v in data.items() if k not in PER_IMAGE}


def _probe(audit: Audit, real: np.ndarray, synthetic: np.ndarray, real_groups: list[str], offset: int) -> dict:
    try:
        result = probe_detectability(real, synthetic, real_groups=real_groups, folds=5,
                                     n_permutations=settings.DERMAUDIT_PROBE_PERMUTATIONS, seed=seeded(audit, offset))
    except InsufficientSamplesError as exc:
        return {"error": str(exc)}
    return _summary(result.to_dict())


def probe_inputs(audit: Audit) -> dict[str, tuple]:
    """(real, synthetic, real groups, seed offset) of each probe run; read here, on the stage's thread (the database)."""
    ref_images, reference = set_features(audit, audit.reference_set)
    _, generated = set_features(audit, audit.generated_set)
    groups = [lesion_group(image) for image in ref_images]
    first, second = reference_halves(audit, ref_images)
    inputs = {
        "audited": (reference.features, generated.features, groups, 100),
        "negative_control": (reference.features[first], reference.features[second], [groups[i] for i in first], 101),
    }
    if audit.baseline_set_id:
        _, baseline = set_features(audit, audit.baseline_set)
        inputs["positive_control"] = (reference.features, baseline.features, groups, 102)
    return inputs


def probe_block(audit: Audit, inputs: dict[str, tuple]) -> dict:
    return {name: _probe(audit, *arguments) for name, arguments in inputs.items()}


def _crossfit(audit: Audit, real: np.ndarray, synthetic: np.ndarray, real_groups: list[str], offset: int):
    try:
        return crossfit_detector(
            real, synthetic, real_groups=real_groups, folds=settings.DERMAUDIT_CROSSFIT_FOLDS,
            epochs=settings.DERMAUDIT_CROSSFIT_EPOCHS, steps=settings.DERMAUDIT_CROSSFIT_STEPS,
            model=AUDIT_NATIVE_MODEL, preprocessing=AUDIT_NATIVE_PREPROCESSING, augmentation=AUDIT_NATIVE_AUGMENTATION,
            select_best_epoch=False, seed=seeded(audit, offset))
    except InsufficientSamplesError as exc:
        return {"error": str(exc)}


def native_windows(sources: list, preprocessing: dd.Preprocessing = AUDIT_NATIVE_PREPROCESSING) -> np.ndarray:
    """The ViT's input of each image (path or array): its native window, decoded on two threads (Pillow releases the
    GIL; each window depends on its own image only, so the order of work changes nothing)."""
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="windows") as pool:
        return as_windows(list(pool.map(lambda source: dd.standardise_image(source, preprocessing), sources)))


def traced(images: list[Image], mode: str = HARD_CONTROL_TRACE) -> list[np.ndarray]:
    """Real images with a generator's upsampling trace (deepfake_detector.perturbations.upsampling_trace)."""
    return [upsampling_trace(np.asarray(open_rgb(image.path)), mode) for image in images]


def input_facts(images: list[Image], preprocessing: dd.Preprocessing = AUDIT_NATIVE_PREPROCESSING) -> dict:
    """What besides the generator could tell the sets apart at the pixels: formats, sizes, how much of each image the
    window covers, and how many images were too small for a native crop (resized up by us)."""
    sides = np.array([min(image.width, image.height) for image in images]) if images else np.zeros(0)
    return {"n": len(images), "formats": dict(Counter(image.original_format or "unknown" for image in images)),
            "median_width": float(np.median([i.width for i in images])) if images else None,
            "median_height": float(np.median([i.height for i in images])) if images else None,
            "window_px": int(min(preprocessing.window, np.median(sides))) if len(sides) else None,
            "smaller_than_crop": int(np.sum(sides < preprocessing.size)),
            "smaller_than_window": int(np.sum(sides < preprocessing.window))}


def _crossfit_summary(result, keep_rows: bool = False) -> dict:
    if isinstance(result, dict):
        return result
    data = result.to_dict()
    return {**_summary(data["detectability"], keep_rows), "epochs": data["epochs"], "per_fold": data["per_fold"]}


def weights_sha256(detector: dd.Detector) -> str:
    digest = hashlib.sha256()
    for name, tensor in detector.model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def vit_block(audit: Audit) -> dict:
    preprocessing = AUDIT_NATIVE_PREPROCESSING
    ref_images = ordered_images(audit.reference_set)
    gen_images = ordered_images(audit.generated_set)
    groups = [lesion_group(image) for image in ref_images]
    reference = native_windows([image.path for image in ref_images])
    audited = _crossfit(audit, reference, native_windows([image.path for image in gen_images]), groups, 110)
    block = {"audited": _crossfit_summary(audited, keep_rows=True), "preprocessing": preprocessing.name,
             "model": "AUDIT_NATIVE_MODEL (deepfake_detector/crossfit.py)",
             "inputs": {"reference": input_facts(ref_images), "generated": input_facts(gen_images)}}
    if not isinstance(audited, dict):
        folder = artefact_folder(audit, "detectability")
        # sha256: the checkpoint file (weights and metadata, e.g. training wall times); weights_sha256: the weights
        # alone, which a re-run reproduces.
        # path: the storage name (relative to MEDIA_ROOT), like every other stored evidence file.
        block["fold_models"] = [{"path": media_name(folder / f"fold_{k}.pt"),
                                 "sha256": dd.save_detector(model, folder / f"fold_{k}.pt"),
                                 "weights_sha256": weights_sha256(model)}
                                for k, model in enumerate(audited.fold_models)]
    first, second = reference_halves(audit, ref_images)
    first_groups = [groups[i] for i in first]
    block["negative_control"] = _crossfit_summary(_crossfit(audit, reference[first], reference[second], first_groups,
                                                            111))
    hard = native_windows(traced([ref_images[i] for i in second]))
    block["positive_control"] = {
        **_crossfit_summary(_crossfit(audit, reference[first], hard, first_groups, 112)),
        "label": f"the other reference half with a generator's 2x upsampling trace ({HARD_CONTROL_TRACE}), at the "
                 "audit's own resolution"}
    return block


def _timed(function, *args) -> tuple[object, float]:
    started = time.perf_counter()
    return function(*args), time.perf_counter() - started


def _vit(audit: Audit) -> dict:
    if settings.DERMAUDIT_CROSSFIT_EPOCHS <= 0:
        return {"audited": {"error": "the ViT cross-fit is switched off (DERMAUDIT_CROSSFIT_EPOCHS = 0)"}}
    if "vit" not in audit.effective_criteria().get("detectability", {}).get("tests", ["vit"]):
        return {"audited": {"error": "the ViT test is not selected for this audit"}}
    return vit_block(audit)


def detectability_stage(audit: Audit) -> dict:
    # The probe (seconds of numpy) runs on a background thread while the ViT trains: the ViT's fixed single torch
    # thread leaves the other core idle. Each is seeded on its own, so running them side by side changes no number.
    # The BLAS thread limit is set once around both: threadpoolctl's limits are process-wide, and two threads setting
    # and restoring them in turn could leave either running at the other's setting.
    with threadpool_limits(BLAS_THREADS, user_api="blas"), \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="probe") as background:
        probe = background.submit(_timed, probe_block, audit, probe_inputs(audit))
        vit, vit_seconds = _timed(_vit, audit)
        probe_result, probe_seconds = probe.result()
    return {"probe": probe_result, "vit": vit, "seconds": {"probe": probe_seconds, "vit": vit_seconds}}
