"""Acceptance criteria: each one evaluated once, from the audit's stored stage results, into a row that the PDF,
the JSON twin, the web page and the API all show (PASS, FAIL, or N/A with the reason).

A verdict is only as good as the instrument behind it. So every criterion (but the reader study's, whose blinded
MRMC design is its own check) carries controls measured in the same run, on the same images and code path:

- a **negative control** — a set that is known to be indistinguishable from real images (one random half of the
  reference audited against the other half; held-out real images for the copy rule; a phototype sample drawn from
  the target mix) — must PASS under the same threshold: the criterion can pass;
- a **positive control** — a set that is known to be bad (the baseline generator's images; the exact and the
  transformed copy baselines; a single-phototype set) — must FAIL, or for detectors and copy rules meet a stated
  detection requirement (AUC ≥ 0.9, ≥ 95 % detected): the criterion can fail.

A control that was not measured, or that did not behave, makes the criterion N/A with the reason: never PASS.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from auditor.models import Audit
from auditor.reporting import format_cell

Measure = tuple[float | None, tuple, str | None]  # (value compared, (point, bound) or CI, reason when unavailable)


def reader_summary(audit: Audit) -> dict | None:
    study = audit.reader_study
    if study is None or not study.is_closed:
        return None
    from reader_study.results import stored_results

    payload = stored_results(study).payload
    # The study's single-modality OR-Hillis result (or {"error": reason} when its design does not support one).
    single = (payload.get("mrmc") or {}).get("all_synthetic_vs_real") or {}
    return {"payload": payload, "auc": single.get("auc"), "ci_low": single.get("ci_low"), "ci_high": single.get("ci_high"),
            "df": single.get("df"), "error": single.get("error")}


def results_of(audit: Audit) -> dict[str, dict]:
    return {r.stage: r.data for r in audit.results.all()}


def _ci(block: dict | None) -> tuple[float | None, float | None]:
    if not block:
        return (None, None)
    return (block.get("low"), block.get("high"))


# --- measures: one block of stage results -> (value compared, interval shown, reason) -------------------------------

def _fd(block: dict | None) -> Measure:
    fd, floor = (block or {}).get("frechet") or {}, ((block or {}).get("real_floor") or {}).get("floor")
    if not fd or not floor:
        return None, (None, None), "FD or its floor not computed"
    _, high = _ci(fd.get("ci"))
    return (high / floor if high is not None else None), (fd["value"] / floor, high / floor if high else None), None


def _kid(block: dict | None) -> Measure:
    kid = (block or {}).get("kernel_distance") or {}
    return kid.get("value"), _ci(kid.get("ci")), None if kid else "KID not computed"


def _prdc(name: str) -> Callable[[dict | None], Measure]:
    def measure(block: dict | None) -> Measure:
        prdc = (block or {}).get("precision_recall") or {}
        return prdc.get(name), _ci(prdc.get(f"{name}_ci")), None if prdc else "precision/recall not computed"
    return measure


def _copy_rate(block: dict | None) -> Measure:
    """Upper Wilson bound of the calibrated copy rate (the point rate and the bound are shown)."""
    if not block or block.get("copy_rate") is None:
        return None, (None, None), (block or {}).get("error") or "copy detection not computed"
    high = _ci(block.get("copy_ci"))[1]
    return high, (block["copy_rate"], high), None


def _detected_share(block: dict | None) -> Measure:
    """Point share of known copies that the copy rule detects (for the copy baselines)."""
    if not block or block.get("copy_rate") is None:
        return None, (None, None), (block or {}).get("error") or "not measured"
    return block["copy_rate"], _ci(block.get("copy_ci")), None


def _tvd(block: dict | None) -> Measure:
    if not block or block.get("total_variation") is None:
        return None, (None, None), (block or {}).get("error") or "no phototypes"
    return block["total_variation"], tuple(block["total_variation_ci"]), block.get("gate")


def _auc_upper(block: dict | None) -> Measure:
    """Upper 95 % bound of a cross-fitted detectability AUC (the conservative side for "hard to detect")."""
    if not block or block.get("auc") is None:
        return None, (None, None), (block or {}).get("error") or "not computed"
    low, high = _ci(block.get("ci"))
    return high, (low, high), None


def _gain_lower(block: dict | None) -> Measure:
    """Lower 95 % bound of a paired AUROC gain (the conservative side for "does not hurt")."""
    if not block or block.get("gain") is None:
        return None, (None, None), (block or {}).get("error") or "not computed"
    low, high = _ci(block.get("ci"))
    return low, (low, high), None


def _auc_point(block: dict | None) -> Measure:
    if not block or block.get("auc") is None:
        return None, (None, None), (block or {}).get("error") or "not computed"
    return block["auc"], _ci(block.get("ci")), None


# --- where each block lives in the stage results ---------------------------------------------------------------------

def _path(*keys: str, missing: str) -> Callable[[dict, Audit], dict | None]:
    def find(results: dict, audit: Audit) -> dict | None:
        node = results
        for key in keys:
            node = (node or {}).get(key)
        return node if node else ({"error": missing} if keys[0] in results else None)
    return find


def _utility(key: str) -> Callable[[dict, Audit], dict | None]:
    """A block of the utility stage; the stage's own reason (e.g. which labels to upload) when it could not run."""
    def find(results: dict, audit: Audit) -> dict | None:
        stage = results.get("utility")
        if stage is None:
            return None
        if stage.get("error"):
            return {"error": stage["error"]}
        return stage.get(key) or {"error": "not measured"}
    return find


def _phototype_audited(results: dict, audit: Audit) -> dict | None:
    photo = results.get("phototype")
    if photo is None:
        return None
    if not photo.get("balance"):
        return {"error": photo.get("balance_error", "no phototypes")}
    if not photo.get("may_drive_pass_fail"):
        return {**photo["balance"], "gate": "phototypes come from an estimator not validated on labelled images of "
                                             "this acquisition type"}
    return photo["balance"]


def _reader(results: dict, audit: Audit) -> dict | None:
    return {"reader": reader_summary(audit)}


def _reader_measure(block: dict | None) -> Measure:
    reader = (block or {}).get("reader")
    if not reader or reader["auc"] is None:
        return None, (None, None), (reader or {}).get("error") or "no closed reader study linked"
    return reader["ci_high"], (reader["auc"], reader["ci_high"]), None


@dataclass(frozen=True)
class Control:
    kind: str  # "negative" (must pass) or "positive" (must fail, or meet `requirement`)
    label: str
    block: Callable[[dict, Audit], dict | None]
    absent: str  # why it can be missing, shown when it is
    # None: the criterion's own threshold (negative: must pass; positive: must fail). Else (direction, bound, measure).
    requirement: tuple[str, float, Callable[[dict | None], Measure]] | None = None
    misbehaves: str = ""  # what it means when this control does not behave, added to the N/A reason
    # A positive control shows that the instrument can fail; "pass": it guards only a PASS, so a set that fails the
    # criterion itself (with its negative control met) is FAIL whatever this control shows: the instrument's power
    # to fail was shown on the set.
    guards: str = "any"


@dataclass(frozen=True)
class Criterion:
    title: str
    explanation: str
    unit: str
    measure: Callable[[dict | None], Measure]
    block: Callable[[dict, Audit], dict | None]
    absent: str
    controls: tuple[Control, ...] = field(default_factory=tuple)
    controls_note: str = ""


def _fidelity_controls(measure_label: str) -> tuple[Control, ...]:
    return (
        Control("negative", "one random half of the reference audited against the other half",
                _path("fidelity", "negative_control", missing="reference too small to split"),
                "the fidelity stage did not run"),
        Control("positive", f"the baseline generator's images ({measure_label})",
                _path("fidelity", "baseline", missing="no baseline set in this audit"),
                "no baseline set in this audit"),
    )


def _detectability_controls(kind: str) -> tuple[Control, ...]:
    return (
        Control("negative", "one random half of the reference against the other half",
                _path("detectability", kind, "negative_control", missing="not measured"),
                "the detectability stage did not run"),
        Control("positive", "the baseline generator's images",
                _path("detectability", kind, "positive_control", missing="no baseline set in this audit"),
                "no baseline set in this audit", requirement=("min", 0.9, _auc_point)),
    )


CRITERIA: dict[str, Criterion] = {
    "fd_upper_ci_over_floor": Criterion(
        "Fréchet distance to the reference, over the real-vs-real floor",
        "How far the generated images' features lie from the real ones, relative to how far two samples of real "
        "images of the same size lie from each other; 1 means as close as real images are to one another.",
        "× the floor (upper 95% CI bound)", _fd, _path("fidelity", "generated", missing="not computed"),
        "the fidelity stage did not run", _fidelity_controls("FD")),
    "kid": Criterion(
        "Kernel distance to the real images (KID)",
        "A second distance between generated and real image features, unbiased at small set sizes; 0 means "
        "indistinguishable.", "KID (squared MMD)", _kid, _path("fidelity", "generated", missing="not computed"),
        "the fidelity stage did not run", _fidelity_controls("KID")),
    "precision": Criterion(
        "Realism of single images (precision)",
        "Share of generated images that fall among real images in feature space (5 nearest neighbours).",
        "share, 0–1", _prdc("precision"), _path("fidelity", "generated", missing="not computed"),
        "the fidelity stage did not run", _fidelity_controls("precision")),
    "recall": Criterion(
        "Variety covered (recall)",
        "Share of real images whose neighbourhood some generated image reaches (5 nearest neighbours); low recall "
        "means kinds of lesions are missing.", "share, 0–1", _prdc("recall"),
        _path("fidelity", "generated", missing="not computed"), "the fidelity stage did not run",
        _fidelity_controls("recall")),
    "memorization_rate": Criterion(
        "Copies of training images (memorisation)",
        "Share of generated images that reproduce a training image, possibly flipped, rotated, cropped, resized, "
        "recoloured, blurred or re-encoded, by a copy rule calibrated on real images the generator never saw.",
        "share, 0–1 (upper 95% CI bound)", _copy_rate, _path("memorization", "copies", "generated", missing="not computed"),
        "the memorisation stage did not run", (
            Control("negative", "real images the generator never saw, against the training images",
                    _path("memorization", "copies", "held_out_real", missing="no held-out real images"),
                    "the memorisation stage did not run"),
            Control("positive", "exact copies of training images",
                    _path("memorization", "copies", "exact_copies", missing="not measured"),
                    "the memorisation stage did not run", requirement=("min", 0.95, _detected_share)),
            Control("positive", "transformed copies of training images",
                    _path("memorization", "copies", "transformed_copies", missing="not measured"),
                    "the memorisation stage did not run", requirement=("min", 0.95, _detected_share)),
        )),
    "phototype_tvd": Criterion(
        "Skin-tone balance (Fitzpatrick phototype mix)",
        "Total variation distance between the generated set's phototype mix and the target mix: 0 is the same mix, "
        "1 no overlap.", "total variation distance, 0–1", _tvd, _phototype_audited, "the phototype stage did not run", (
            Control("negative", "a set of the same size drawn from the target mix",
                    _path("phototype", "controls", "target_sample", missing="not measured"),
                    "the phototype stage did not run"),
            Control("positive", "a set of the same size, all of one phototype",
                    _path("phototype", "controls", "single_type", missing="not measured"),
                    "the phototype stage did not run"),
        )),
    "detectability_auc": Criterion(
        "Detectable by a detector trained on these images (ViT, cross-fitted AUC)",
        "A ViT detector trained on this generated set against the reference, each image scored by a model that "
        "never trained on it: 0.5 means it cannot tell them apart, 1 always.", "ROC AUC, 0–1 (upper 95% CI bound)",
        _auc_upper, _path("detectability", "vit", "audited", missing="not computed"),
        "the detectability stage did not run", _detectability_controls("vit")),
    "probe_auc": Criterion(
        "Detectable from image features (cross-fitted linear probe AUC)",
        "A logistic regression on the extractor's features, cross-fitted like the ViT: a seconds-cheap second "
        "opinion on detectability.", "ROC AUC, 0–1 (upper 95% CI bound)", _auc_upper,
        _path("detectability", "probe", "audited", missing="not computed"), "the detectability stage did not run",
        _detectability_controls("probe")),
    "utility_gain": Criterion(
        "Fitness for purpose: a classifier trained with these images (AUROC gain)",
        "Does adding the generated images to a real training set help a classifier of the same classes on real "
        "patients? The gain in AUROC on real test images, real + generated minus real only; the criterion is "
        "non-inferiority: the lower 95% bound must not fall below the margin.", "AUROC gain (lower 95% CI bound)",
        _gain_lower, _utility("audited"), "the utility stage did not run", (
            Control("negative", "held-out real images with their true labels, added as if generated",
                    _utility("negative_control"), "the utility stage did not run"),
            Control("positive", "the generated images with their class labels swapped",
                    _utility("positive_control"), "the utility stage did not run",
                    misbehaves="swapped labels at this ratio do not move the AUROC past the margin, so the test "
                               "lacks the power to fail a harmful set here", guards="pass"),
        )),
    "reader_auc": Criterion(
        "Detectable by dermatologists (reader AUC)",
        "Reader-averaged AUC of dermatologists calling images real or synthetic in a blinded study: 0.5 is chance.",
        "AUC, 0–1 (upper 95% CI bound)", _reader_measure, _reader, "no closed reader study linked",
        controls_note="no automated controls: the blinded, randomised MRMC design with real images among the "
                      "synthetic ones is the study's own check"),
}


def _passes(value: float, threshold: float, direction: str) -> bool:
    return value <= threshold if direction == "max" else value >= threshold


def _bound_text(direction: str, bound: float) -> str:
    return f"{'≤' if direction == 'max' else '≥'} {format_cell(bound)}"


def _measure(measure: Callable[[dict | None], Measure], block: dict | None, absent: str) -> Measure:
    if block is None:
        return None, (None, None), absent
    if block.get("error"):
        return None, (None, None), str(block["error"])
    return measure(block)


def _control_row(control: Control, criterion: Criterion, spec: dict, results: dict, audit: Audit) -> dict:
    block = control.block(results, audit)
    if control.requirement is None:
        measure, direction, bound = criterion.measure, spec["direction"], spec["threshold"]
        wanted = control.kind == "negative"  # negative: must pass; positive: must fail
        requirement = f"must {'pass' if wanted else 'fail'} ({_bound_text(direction, bound)})"
    else:
        direction, bound, measure = control.requirement
        wanted, requirement = True, _bound_text(direction, bound)
    value, ci, reason = _measure(measure, block, control.absent)
    ok = None if value is None else _passes(value, bound, direction) == wanted
    return {"kind": control.kind, "label": control.label, "value": value, "ci": list(ci), "requirement": requirement,
            "ok": ok, "reason": reason or "", **({"misbehaves": control.misbehaves} if control.misbehaves else {}),
            "value_text": format_cell(value),
            "ci_text": format_cell(tuple(ci)) if any(v is not None for v in ci) else "n/a"}


def evaluate_criteria(audit: Audit, results: dict | None = None) -> list[dict]:
    results = results if results is not None else results_of(audit)
    rows = []
    for name, spec in audit.effective_criteria().items():
        criterion = CRITERIA.get(name)
        if criterion is None:
            continue
        block = criterion.block(results, audit)
        value, ci, reason = _measure(criterion.measure, block, criterion.absent)
        threshold, direction = spec["threshold"], spec["direction"]
        controls = [_control_row(c, criterion, spec, results, audit) for c in criterion.controls]
        if value is not None and reason is None and not _passes(value, threshold, direction):
            for control, row in zip(criterion.controls, controls):
                if control.guards == "pass" and not row["ok"]:
                    row["waived"] = "not needed: the set failed the criterion itself, which shows the test can fail"
        controls_that_count = [c for c in controls if not c.get("waived")]
        if not spec.get("enabled", True):
            status, reason = "N/A", "not selected for this audit"
        elif reason is not None or value is None:
            status = "N/A"
        elif unmeasured := [c for c in controls_that_count if c["ok"] is None]:
            status = "N/A"
            reason = "; ".join(f"{c['kind']} control not measured ({c['label']}: {c['reason']})" for c in unmeasured)
        elif failed := [c for c in controls_that_count if not c["ok"]]:
            status = "N/A"
            reason = "; ".join(
                f"{c['kind']} control did not behave ({c['label']}: {c['value_text']}, required {c['requirement']})"
                + (f": {c['misbehaves']}" if c.get("misbehaves") else "") for c in failed)
        else:
            status = "PASS" if _passes(value, threshold, direction) else "FAIL"
        rows.append({
            "name": name, "title": criterion.title, "explanation": criterion.explanation, "unit": criterion.unit,
            "basis": spec["basis"], "enabled": bool(spec.get("enabled", True)), "value": value, "ci": list(ci), "threshold": threshold,
            "direction": direction, "status": status, "reason": reason, "controls": controls,
            "controls_note": criterion.controls_note,
            "value_text": format_cell(value), "ci_text": format_cell(tuple(ci)) if any(v is not None for v in ci) else "n/a",
            "threshold_text": _bound_text(direction, threshold),
        })
    return rows
