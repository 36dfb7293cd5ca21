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

Every criterion and control states three numbers: the point estimate, its 95% CI, and the number its rule compares
(`compared_is`: the point estimate, or the conservative bound of the CI: the upper bound where the estimate must stay
below a threshold and is noisy (FD over the floor, the copy rate, detectability AUCs), the lower bound of the utility
gain). `criteria_verdict` and `audit_verdict` give the overall PASS / FAIL / INCOMPLETE.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from auditor.models import Audit
from auditor.reporting import format_cell
from auditor.reporting.formatting import plain_number

POINT, UPPER, LOWER = "point estimate", "upper 95% CI bound", "lower 95% CI bound"  # what a rule compares
Reading = tuple[float | None, tuple[float | None, float | None], str | None]  # (estimate, 95% CI, reason unavailable)


@dataclass(frozen=True)
class Measured:
    """A criterion's (or control's) number as its rule sees it: the point estimate, its 95% CI, and which of the
    three the rule compares with the threshold (`compares`: POINT, UPPER or LOWER)."""

    estimate: float | None
    ci: tuple[float | None, float | None]
    compares: str
    reason: str | None = None  # why it is not available (or, with a value, why it may not decide)

    @property
    def value(self) -> float | None:
        """The number the rule compares."""
        return {POINT: self.estimate, UPPER: self.ci[1], LOWER: self.ci[0]}[self.compares]


@dataclass(frozen=True)
class Measure:
    """How a block of stage results becomes a `Measured`: `read` gives (estimate, CI, reason); `compares` is fixed
    per measure (the conservative side of the interval, or the point estimate), so it is known even when a block is
    missing."""

    compares: str
    read: Callable[[dict], Reading]


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


# --- measures: one block of stage results -> (estimate, 95% CI, reason) ---------------------------------------------

def _over(value: float | None, floor: float) -> float | None:
    return None if value is None else value / floor


def _fd(block: dict) -> Reading:
    """FD over the real-vs-real floor at the same N: the estimate and both CI bounds divided by the floor."""
    fd, floor = block.get("frechet") or {}, (block.get("real_floor") or {}).get("floor")
    if not fd or not floor:
        return None, (None, None), "FD or its floor not computed"
    low, high = _ci(fd.get("ci"))
    return _over(fd.get("value"), floor), (_over(low, floor), _over(high, floor)), None


def _kid(block: dict) -> Reading:
    kid = block.get("kernel_distance") or {}
    return kid.get("value"), _ci(kid.get("ci")), None if kid else "KID not computed"


def _prdc(name: str) -> Callable[[dict], Reading]:
    def read(block: dict) -> Reading:
        prdc = block.get("precision_recall") or {}
        return prdc.get(name), _ci(prdc.get(f"{name}_ci")), None if prdc else "precision/recall not computed"
    return read


def _copy_rate(block: dict) -> Reading:
    """The calibrated copy rate with its Wilson interval."""
    if block.get("copy_rate") is None:
        return None, (None, None), block.get("error") or "copy detection not computed"
    return block["copy_rate"], _ci(block.get("copy_ci")), None


def _tvd(block: dict) -> Reading:
    if block.get("total_variation") is None:
        return None, (None, None), block.get("error") or "no phototypes"
    low, high = block.get("total_variation_ci") or (None, None)
    return block["total_variation"], (low, high), block.get("gate")


def _auc(block: dict) -> Reading:
    if block.get("auc") is None:
        return None, (None, None), block.get("error") or "not computed"
    return block["auc"], _ci(block.get("ci")), None


def _gain(block: dict) -> Reading:
    if block.get("gain") is None:
        return None, (None, None), block.get("error") or "not computed"
    return block["gain"], _ci(block.get("ci")), None


def _reader_auc(block: dict) -> Reading:
    reader = block.get("reader")
    if not reader or reader["auc"] is None:
        return None, (None, None), (reader or {}).get("error") or "no closed reader study linked"
    return reader["auc"], (reader["ci_low"], reader["ci_high"]), None


FD_UPPER = Measure(UPPER, _fd)  # upper bound: FD is biased and noisy at small N, so the conservative side
KID_POINT = Measure(POINT, _kid)
COPY_RATE_UPPER = Measure(UPPER, _copy_rate)  # upper Wilson bound of the copy rate of the audited set
DETECTED_SHARE = Measure(POINT, _copy_rate)  # point share of known copies the rule detects (copy baselines)
TVD_POINT = Measure(POINT, _tvd)
AUC_UPPER = Measure(UPPER, _auc)  # the conservative side for "hard to detect"
AUC_POINT = Measure(POINT, _auc)
GAIN_LOWER = Measure(LOWER, _gain)  # the conservative side for "does not hurt"
READER_UPPER = Measure(UPPER, _reader_auc)


def _prdc_point(name: str) -> Measure:
    return Measure(POINT, _prdc(name))


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


@dataclass(frozen=True)
class Control:
    kind: str  # "negative" (must pass) or "positive" (must fail, or meet `requirement`)
    label: str
    block: Callable[[dict, Audit], dict | None]
    absent: str  # why it can be missing, shown when it is
    # None: the criterion's own threshold (negative: must pass; positive: must fail). Else (direction, bound, measure).
    requirement: tuple[str, float, Measure] | None = None
    misbehaves: str = ""  # what it means when this control does not behave, added to the N/A reason
    test: str = ""  # of a criterion made of several tests: the test it belongs to (left out when not selected)
    # A positive control shows that the instrument can fail; "pass": it guards only a PASS, so a set that fails the
    # criterion itself (with its negative control met) is FAIL whatever this control shows: the instrument's power
    # to fail was shown on the set.
    guards: str = "any"


@dataclass(frozen=True)
class Criterion:
    title: str
    explanation: str
    unit: str
    measure: Measure
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


DETECTABILITY_TESTS = {"vit": "ViT on native-resolution crops", "probe": "feature probe"}


def _detectability(results: dict, audit: Audit) -> dict | None:
    """The detectability tests of the audit as one block: the deciding test is the one with the largest upper bound
    (every test must stay at or below the threshold for a PASS, so the largest bound decides). `tests` keeps each
    test's AUC and CI, and whether it distinguishes the set from the reference (CI above 0.5 after Holm's correction
    across the tests)."""
    stage = results.get("detectability")
    if stage is None:
        return None
    tests = [t for t in audit.effective_criteria().get("detectability", {}).get("tests", list(DETECTABILITY_TESTS))
             if t in DETECTABILITY_TESTS]
    if not tests:
        return {"error": "no detectability test selected"}
    found = []
    for test in tests:
        item = (stage.get(test) or {}).get("audited") or {}
        if item.get("auc") is None:
            return {"error": f"{DETECTABILITY_TESTS[test]}: {item.get('error') or 'not computed'}"}
        found.append((test, item))
    distinguishable = holm_distinguishable([item for _, item in found])
    deciding_test, deciding = max(found, key=lambda pair: (_ci(pair[1].get("ci"))[1] or 0.0))
    return {"auc": deciding["auc"], "ci": deciding.get("ci"), "test": deciding_test,
            "tests": [{"test": test, "title": DETECTABILITY_TESTS[test], "auc": item["auc"],
                       "ci": item.get("ci"), **holm} for (test, item), holm in zip(found, distinguishable)]}


def holm_distinguishable(items: list[dict], alpha: float = 0.05) -> list[dict]:
    """One-sided p-values of AUC > 0.5 from each test's DeLong interval (its standard error from the lower side, which
    clipping at 1 leaves intact), adjusted by Holm across the tests (statsmodels): 'distinguishable from this
    reference' at family-wise level alpha."""
    from scipy.stats import norm
    from statsmodels.stats.multitest import multipletests

    p_values = []
    for item in items:
        low = _ci(item.get("ci"))[0]
        se = (item["auc"] - low) / norm.ppf(0.975) if low is not None and item["auc"] > low else None
        p_values.append(float(norm.sf((item["auc"] - 0.5) / se)) if se else (0.0 if item["auc"] > 0.5 else 1.0))
    reject, adjusted, _, _ = multipletests(p_values, alpha=alpha, method="holm")
    return [{"p_value": p, "holm_p_value": float(a), "distinguishable": bool(r)}
            for p, a, r in zip(p_values, adjusted, reject)]


def _detectability_controls() -> tuple[Control, ...]:
    controls = []
    for test, positive in (("vit", "the other reference half with a generator's 2x upsampling trace (hard, at this "
                                    "audit's resolution)"),
                           ("probe", "the baseline generator's images")):
        controls += [
            Control("negative", f"{DETECTABILITY_TESTS[test]}: one random half of the reference against the other half",
                    _path("detectability", test, "negative_control", missing="not measured"),
                    "the detectability stage did not run", test=test),
            Control("positive", f"{DETECTABILITY_TESTS[test]}: {positive}",
                    _path("detectability", test, "positive_control", missing="no baseline set in this audit"),
                    "no baseline set in this audit", requirement=("min", 0.9, AUC_POINT), test=test, guards="pass",
                    misbehaves="this test is too weak to vouch for a set it cannot tell apart"),
        ]
    return tuple(controls)


CRITERIA: dict[str, Criterion] = {
    "fd_upper_ci_over_floor": Criterion(
        "Fréchet distance to the reference, over the real-vs-real floor",
        "How far the generated images' features lie from the real ones, relative to how far two samples of real "
        "images of the same size lie from each other; 1 means as close as real images are to one another.",
        "× the floor (upper 95% CI bound)", FD_UPPER, _path("fidelity", "generated", missing="not computed"),
        "the fidelity stage did not run", _fidelity_controls("FD")),
    "kid": Criterion(
        "Kernel distance to the real images (KID)",
        "A second distance between generated and real image features, unbiased at small set sizes; 0 means "
        "indistinguishable.", "KID (squared MMD)", KID_POINT, _path("fidelity", "generated", missing="not computed"),
        "the fidelity stage did not run", _fidelity_controls("KID")),
    "precision": Criterion(
        "Realism of single images (precision)",
        "Share of generated images that fall among real images in feature space (5 nearest neighbours).",
        "share, 0–1", _prdc_point("precision"), _path("fidelity", "generated", missing="not computed"),
        "the fidelity stage did not run", _fidelity_controls("precision")),
    "recall": Criterion(
        "Variety covered (recall)",
        "Share of real images whose neighbourhood some generated image reaches (5 nearest neighbours); low recall "
        "means kinds of lesions are missing.", "share, 0–1", _prdc_point("recall"),
        _path("fidelity", "generated", missing="not computed"), "the fidelity stage did not run",
        _fidelity_controls("recall")),
    "memorization_rate": Criterion(
        "Copies of training images (memorisation)",
        "Share of generated images that reproduce a training image, possibly flipped, rotated, cropped, resized, "
        "recoloured, blurred or re-encoded, by a copy rule calibrated on real images the generator never saw.",
        "share, 0–1 (upper 95% CI bound)", COPY_RATE_UPPER, _path("memorization", "copies", "generated", missing="not computed"),
        "the memorisation stage did not run", (
            Control("negative", "real images the generator never saw, against the training images",
                    _path("memorization", "copies", "held_out_real", missing="no held-out real images"),
                    "the memorisation stage did not run"),
            Control("positive", "exact copies of training images",
                    _path("memorization", "copies", "exact_copies", missing="not measured"),
                    "the memorisation stage did not run", requirement=("min", 0.95, DETECTED_SHARE)),
            Control("positive", "transformed copies of training images",
                    _path("memorization", "copies", "transformed_copies", missing="not measured"),
                    "the memorisation stage did not run", requirement=("min", 0.95, DETECTED_SHARE)),
        )),
    "phototype_tvd": Criterion(
        "Skin-tone balance (Fitzpatrick phototype mix)",
        "Total variation distance between the generated set's phototype mix and the target mix: 0 is the same mix, "
        "1 no overlap.", "total variation distance, 0–1", TVD_POINT, _phototype_audited, "the phototype stage did not run", (
            Control("negative", "a set of the same size drawn from the target mix",
                    _path("phototype", "controls", "target_sample", missing="not measured"),
                    "the phototype stage did not run"),
            Control("positive", "a set of the same size, all of one phototype",
                    _path("phototype", "controls", "single_type", missing="not measured"),
                    "the phototype stage did not run"),
        )),
    "detectability": Criterion(
        "Detectable by detectors trained on these images (cross-fitted AUC of every test)",
        "Classifiers trained on this generated set against the reference — a ViT reading the pixels at their own scale "
        "and a logistic-regression probe on the extractor's features — each image scored by a model that never "
        "trained on it: 0.5 means a test cannot tell them apart, 1 always. The set passes only if no test tells "
        "it apart beyond the threshold; 'distinguishable' means from this reference (real images of another clinic "
        "are distinguishable too).", "ROC AUC, 0–1 (largest upper 95% CI bound over the tests)",
        AUC_UPPER, _detectability, "the detectability stage did not run", _detectability_controls()),
    "utility_gain": Criterion(
        "Fitness for purpose: a classifier trained with these images (AUROC gain)",
        "Does adding the generated images to a real training set help a classifier of the same classes on real "
        "patients? The gain in AUROC on real test images, real + generated minus real only; the criterion is "
        "non-inferiority: the lower 95% bound must not fall below the margin.", "AUROC gain (lower 95% CI bound)",
        GAIN_LOWER, _utility("audited"), "the utility stage did not run", (
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
        "AUC, 0–1 (upper 95% CI bound)", READER_UPPER, _reader, "no closed reader study linked",
        controls_note="no automated controls: the blinded, randomised MRMC design with real images among the "
                      "synthetic ones is the study's own check"),
}


def _passes(value: float, threshold: float, direction: str) -> bool:
    return value <= threshold if direction == "max" else value >= threshold


def _bound_text(direction: str, bound: float) -> str:
    return f"{'≤' if direction == 'max' else '≥'} {format_cell(bound)}"


def _interval_text(ci: tuple) -> str:
    return format_cell(tuple(ci)) if any(v is not None for v in ci) else "n/a"


def comparison_text(compared_is: str, value: float | None, threshold: float, direction: str) -> str:
    """The rule as it was applied, e.g. "upper 95% CI bound 0.630 ≤ 0.750" (or "… 0.910 > 0.750" when it fails)."""
    if value is None:
        return ""
    if _passes(value, threshold, direction):
        relation = "≤" if direction == "max" else "≥"
    else:
        relation = ">" if direction == "max" else "<"
    return f"{compared_is} {format_cell(value)} {relation} {format_cell(threshold)}"


def _measure(measure: Measure, block: dict | None, absent: str) -> Measured:
    if block is None:
        return Measured(None, (None, None), measure.compares, absent)
    if block.get("error"):
        return Measured(None, (None, None), measure.compares, str(block["error"]))
    estimate, ci, reason = measure.read(block)
    measured = Measured(estimate, (ci[0], ci[1]), measure.compares, reason)
    if measured.value is None and reason is None:
        return Measured(estimate, measured.ci, measure.compares, f"the {measure.compares} was not computed")
    return measured


def _numbers(measured: Measured) -> dict:
    """The keys every row and control row share: `value` is the number the rule compares (kept under that name for
    the readers of stored rows), `estimate` the point estimate, `ci`/`ci_low`/`ci_high` its 95% CI."""
    return {"value": measured.value, "compared_value": measured.value, "compared_is": measured.compares,
            "estimate": measured.estimate, "ci": list(measured.ci), "ci_low": measured.ci[0], "ci_high": measured.ci[1],
            "value_text": format_cell(measured.value), "estimate_text": format_cell(measured.estimate),
            "ci_text": _interval_text(measured.ci)}


def _control_row(control: Control, criterion: Criterion, spec: dict, results: dict, audit: Audit) -> dict:
    block = control.block(results, audit)
    if control.requirement is None:
        measure, direction, bound = criterion.measure, spec["direction"], spec["threshold"]
        wanted = control.kind == "negative"  # negative: must pass; positive: must fail
        requirement = f"must {'pass' if wanted else 'fail'} ({_bound_text(direction, bound)})"
        source = "criterion threshold"
    else:
        direction, bound, measure = control.requirement
        wanted, requirement, source = True, _bound_text(direction, bound), "control requirement"
    measured = _measure(measure, block, control.absent)
    ok = None if measured.value is None else _passes(measured.value, bound, direction) == wanted
    # `required`, for machines: met exactly when `compared_value <op> bound`.
    op = {("max", True): "<=", ("max", False): ">", ("min", True): ">=", ("min", False): "<"}[(direction, wanted)]
    required = {"direction": direction, "bound": bound, "must": "pass" if wanted else "fail", "op": op, "source": source}
    return {"kind": control.kind, "label": control.label, **_numbers(measured), "requirement": requirement,
            "required": required, "ok": ok, "reason": measured.reason or "",
            **({"misbehaves": control.misbehaves} if control.misbehaves else {})}


def evaluate_criteria(audit: Audit, results: dict | None = None) -> list[dict]:
    """One row per criterion of the audit, enabled or not. Besides the numbers of `_numbers` a row carries its
    verdict (`status` PASS/FAIL/N/A and the N/A `reason`), `threshold`/`direction`, the rule as applied
    (`comparison_text`), and its `controls` rows (with `required`, `ok` and, where a control does not count,
    `waived`). `public_criteria` turns rows into the objects the API and the JSON twin carry."""
    results = results if results is not None else results_of(audit)
    rows = []
    for name, spec in audit.effective_criteria().items():
        criterion = CRITERIA.get(name)
        if criterion is None:
            continue
        block = criterion.block(results, audit)
        measured = _measure(criterion.measure, block, criterion.absent)
        value, reason = measured.value, measured.reason
        threshold, direction = spec["threshold"], spec["direction"]
        selected = [c for c in criterion.controls if not c.test or c.test in spec.get("tests", [c.test])]
        controls = [_control_row(c, criterion, spec, results, audit) for c in selected]
        if value is not None and reason is None and not _passes(value, threshold, direction):
            for control, row in zip(selected, controls):
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
            "basis": spec["basis"], "enabled": bool(spec.get("enabled", True)), **_numbers(measured),
            "threshold": threshold, "direction": direction, "status": status, "reason": reason, "controls": controls,
            "controls_note": criterion.controls_note, "threshold_text": _bound_text(direction, threshold),
            "comparison_text": comparison_text(measured.compares, value, threshold, direction),
            **({"tests": block["tests"]} if isinstance(block, dict) and block.get("tests") else {}),
        })
    return rows


# --- the verdict and the public objects (API, JSON twin) -------------------------------------------------------------

# The stage results `evaluate_criteria` reads (the reader study is read from its own tables): a caller that evaluates
# many audits at once can load just these.
STAGES_READ = ("fidelity", "phototype", "utility", "memorization", "detectability")
PASS, FAIL, INCOMPLETE = "PASS", "FAIL", "INCOMPLETE"
VERDICTS = (PASS, FAIL, INCOMPLETE)


def criteria_verdict(rows: list[dict]) -> str:
    """FAIL if any enabled criterion FAILs; PASS only if there is at least one enabled criterion and every one
    PASSes; INCOMPLETE otherwise. An enabled criterion that is N/A (not measured, or a control did not behave) makes
    the verdict INCOMPLETE, never PASS; a criterion not selected for the audit does not count."""
    statuses = [row["status"] for row in rows if row.get("enabled", True)]
    if FAIL in statuses:
        return FAIL
    if statuses and all(status == PASS for status in statuses):
        return PASS
    return INCOMPLETE


def audit_verdict(audit: Audit, rows: list[dict]) -> str:
    """The verdict of an audit: that of its criteria once it has succeeded; INCOMPLETE while it is a draft, queued
    or running, and when it failed."""
    return criteria_verdict(rows) if audit.status == Audit.Status.SUCCEEDED else INCOMPLETE


def public_criteria(rows: list[dict]) -> list[dict]:
    """Rows of `evaluate_criteria` as the typed objects of the API and the JSON twin: numbers stay numbers (never
    formatted), `value` is the point estimate with `ci_low`/`ci_high`, `compared_value` the number the rule compares
    and `compared_is` which one it is."""
    number = plain_number  # NaN and infinities become None (JSON has neither)
    return [{
        "name": row["name"], "title": row["title"], "status": row["status"], "enabled": bool(row.get("enabled", True)),
        "value": number(row.get("estimate")), "ci_low": number(row.get("ci_low")), "ci_high": number(row.get("ci_high")),
        "compared_value": number(row.get("compared_value")), "compared_is": row.get("compared_is"),
        "threshold": number(row["threshold"]), "direction": row["direction"], "unit": row.get("unit", ""),
        "controls": [{
            "kind": control["kind"], "set": control["label"], "value": number(control.get("estimate")),
            "ci_low": number(control.get("ci_low")), "ci_high": number(control.get("ci_high")),
            "compared_value": number(control.get("compared_value")), "compared_is": control.get("compared_is"),
            "required": {**control["required"], "bound": number(control["required"]["bound"])},
            "met": control["ok"], "waived": control.get("waived") or None, "reason": control.get("reason") or None,
        } for control in row.get("controls", [])],
        "reason": row.get("reason") or None,
    } for row in rows]
