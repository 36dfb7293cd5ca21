"""The utility stage: would a classifier of the reference's classes do better on real patients with these images?

Reads the audit's cached features (the linear probe) or the images (the fine-tuned network), the class labels of
both sets (the criterion's `label`: a labels.csv column such as diagnosis or benign_malignant, or the class a
conditional generator sampled), the reference's lesion/patient groups and its subgroup labels (phototype,
acquisition, sex, age band, site), and calls metrics.utility. The criterion `utility_gain`
(auditor/reporting/criteria.py) reads the three blocks this stage writes: `audited` (the generated set at the
deciding ratio), `negative_control` (held-out real images with their true labels at that ratio) and
`positive_control` (the generated set with its labels swapped).
"""
from __future__ import annotations

import time

from django.conf import settings

from auditor.audits.images import lesion_group, seeded, set_features
from auditor.models import Audit, Image
from metrics.results import InsufficientSamplesError
from metrics.utility import UtilityDesign, evaluate_utility

MISSING = {"", "unknown", "unlabelled", "unlabeled", "na", "n/a", "none"}
ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV", 5: "V", 6: "VI"}
AGE_BANDS = ((30, "under 30"), (45, "30-44"), (60, "45-59"), (75, "60-74"), (200, "75 and over"))


def label_of(image: Image, field: str) -> str | None:
    """The image's class under `field` (a labels.csv column), or None when it has none."""
    value = getattr(image, field, None) if field in {"diagnosis", "acquisition"} else None
    if value is None and field == "fitzpatrick":
        value = image.fitzpatrick
    if value is None:
        value = (image.extra_labels or {}).get(field)
    text = "" if value is None else str(value).strip()
    return None if text.lower() in MISSING else text


def _age_band(image: Image) -> str | None:
    labels = image.extra_labels or {}
    for key in ("age_approx", "age"):
        try:
            age = float(labels.get(key, ""))
        except ValueError:
            continue
        return next(name for limit, name in AGE_BANDS if age < limit)
    return None


def subgroup_labels(images: list[Image]) -> tuple[dict[str, list[str | None]], str]:
    """Subgroup fields of the real images (each with at least two known values) and where phototypes come from."""
    extra = [image.extra_labels or {} for image in images]
    if any(image.fitzpatrick for image in images):
        phototype_field, source = "phototype (dermatologist label)", "labels"
        phototypes = [ROMAN.get(image.fitzpatrick) for image in images]
    else:
        phototype_field, source = "phototype (pixel estimate, not validated)", "estimates"
        phototypes = [ROMAN.get(image.fitzpatrick_estimate) for image in images]

    def first(labels: dict, keys: tuple[str, ...]) -> str | None:
        value = next((str(labels[k]).strip().lower() for k in keys if str(labels.get(k, "")).strip()), None)
        return None if value in MISSING else value

    candidates = {
        phototype_field: phototypes,
        "acquisition": [image.acquisition or None for image in images],
        "sex": [first(labels, ("sex",)) for labels in extra],
        "age band": [_age_band(image) for image in images],
        "site": [first(labels, ("anatom_site_general", "region", "site")) for labels in extra],
    }
    fields = {name: values for name, values in candidates.items() if len({v for v in values if v}) >= 2}
    return fields, source


def _classifier(name: str):
    if name == "fine_tuned":
        from metrics.utility.finetune import FineTunedEffNet

        return FineTunedEffNet(epochs=settings.DERMAUDIT_UTILITY_FINETUNE_EPOCHS)
    from metrics.utility import LinearProbe

    return LinearProbe()


def _design(spec: dict, classifier: str) -> UtilityDesign:
    ratio = spec.get("ratio", 1.0)
    if classifier == "fine_tuned":  # each fit trains a network: one repeat and the deciding ratio only, by default
        return UtilityDesign(repeats=settings.DERMAUDIT_UTILITY_FINETUNE_REPEATS, decision_ratio=ratio,
                             ratios=(1.0,) if ratio == "own" else (float(ratio),), class_mix=spec.get("class_mix", "real"))
    return UtilityDesign(repeats=settings.DERMAUDIT_UTILITY_REPEATS, decision_ratio=ratio,
                         class_mix=spec.get("class_mix", "real"))


def _block(gain: float | None, ci, ratio: float | None, label: str) -> dict:
    if gain is None or ci is None:
        return {"error": f"{label}: not measured"}
    return {"gain": gain, "ci": {"low": ci.low, "high": ci.high}, "ratio": ratio, "label": label}


def utility_stage(audit: Audit) -> dict:
    spec = audit.effective_criteria().get("utility_gain", {})
    field = spec.get("label", "diagnosis")
    classifier_name = spec.get("classifier", "linear_probe")
    started = time.perf_counter()
    ref_images, reference = set_features(audit, audit.reference_set)
    gen_images, generated = set_features(audit, audit.generated_set)
    real_labels = [label_of(image, field) for image in ref_images]
    synthetic_labels = [label_of(image, field) for image in gen_images]
    what = (f"the '{field}' label: upload a labels.csv with a '{field}' column beside the images (or sample the set "
            "from a class-conditional generator, whose samples carry their class)")
    base = {"label_field": field, "classifier_choice": classifier_name,
            "generated_unlabelled": sum(v is None for v in synthetic_labels),
            "reference_unlabelled": sum(v is None for v in real_labels)}
    if not any(synthetic_labels):
        return {**base, "error": f"the generated set carries no class labels; fitness for purpose needs {what}"}
    if not any(real_labels):
        return {**base, "error": f"the reference set carries no class labels; fitness for purpose needs {what}"}

    design = _design(spec, classifier_name)
    real_rows = [i for i, label in enumerate(real_labels) if label is not None]
    # A class needs enough lesions to sit in every test fold and both halves of every training side.
    groups_per_class: dict[str, set] = {}
    for i in real_rows:
        groups_per_class.setdefault(real_labels[i], set()).add(lesion_group(ref_images[i]))
    left_out = {c: len(g) for c, g in groups_per_class.items() if len(g) < 2 * design.folds}
    real_rows = [i for i in real_rows if real_labels[i] not in left_out]
    syn_rows = [i for i, label in enumerate(synthetic_labels) if label is not None]
    images = [ref_images[i] for i in real_rows]
    subgroups, phototype_source = subgroup_labels(images)
    base.update({"reference_classes_left_out": left_out, "phototype_source": phototype_source,
                 "high_risk_requested": list(spec.get("high_risk") or [])})
    classifier = _classifier(classifier_name)
    if classifier_name == "fine_tuned":
        real_x = classifier.activations([image.path for image in images])
        synthetic_x = classifier.activations([gen_images[i].path for i in syn_rows])
    else:
        real_x, synthetic_x = reference.features[real_rows], generated.features[syn_rows]
    try:
        result = evaluate_utility(
            real_x, [real_labels[i] for i in real_rows], [lesion_group(image) for image in images], synthetic_x,
            [synthetic_labels[i] for i in syn_rows], subgroups=subgroups, high_risk_classes=spec.get("high_risk") or None,
            classifier=classifier, design=design, seed=seeded(audit, 120))
    except InsufficientSamplesError as exc:
        return {**base, "error": str(exc)}
    decision = result.decision
    data = result.to_dict()
    return {
        **base, "result": data, "seconds": time.perf_counter() - started,
        "audited": _block(decision.gain, decision.gain_ci, decision.ratio,
                          f"the generated set added at {decision.ratio:g} per real training image"),
        "negative_control": _block(decision.negative_control_gain, decision.negative_control_ci,
                                   decision.negative_control_ratio, "held-out real images with their true labels"),
        "positive_control": _block(decision.positive_control_gain, decision.positive_control_ci, decision.ratio,
                                   "the generated set with its class labels swapped"),
        "extractor": reference.provenance() if classifier_name != "fine_tuned" else None,
    }
