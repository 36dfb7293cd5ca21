"""Acceptance criteria: each one evaluated once, from the audit's stored stage results, into a row that the PDF,
the JSON twin, the web page and the API all show (PASS, FAIL, or N/A with the reason)."""
from __future__ import annotations

from auditor.models import Audit
from auditor.reporting import format_cell


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


def _value_for(name: str, results: dict, audit: Audit) -> tuple[float | None, tuple, str | None]:
    """(value compared, 95% CI, reason when unavailable) for one criterion."""
    generated = (results.get("fidelity") or {}).get("generated") or {}
    if name == "fd_upper_ci_over_floor":
        fd, floor = generated.get("frechet") or {}, (generated.get("real_floor") or {}).get("floor")
        if not fd or not floor:
            return None, (None, None), "FD or its floor not computed"
        low, high = _ci(fd.get("ci"))
        return (high / floor if high is not None else None), (fd["value"] / floor, high / floor if high else None), None
    if name == "kid":
        kid = generated.get("kernel_distance") or {}
        return kid.get("value"), _ci(kid.get("ci")), None if kid else "KID not computed"
    if name in ("precision", "recall"):
        prdc = generated.get("precision_recall") or {}
        return prdc.get(name), _ci(prdc.get(f"{name}_ci")), None if prdc else "precision/recall not computed"
    if name == "memorization_rate":
        memo = ((results.get("memorization") or {}).get("generated")) or {}
        ci = _ci(memo.get("memorized_ci"))
        return ci[1], (memo.get("memorized_fraction"), ci[1]), None if memo else "memorization not computed"
    if name == "phototype_tvd":
        photo = results.get("phototype") or {}
        balance = photo.get("balance")
        if not balance:
            return None, (None, None), photo.get("balance_error", "no phototypes")
        if not photo.get("may_drive_pass_fail"):
            return balance["total_variation"], tuple(balance["total_variation_ci"]), \
                "phototypes come from an estimator not validated on labelled images of this acquisition type"
        return balance["total_variation"], tuple(balance["total_variation_ci"]), None
    if name == "detector_auc":
        detector = results.get("detector") or {}
        if not detector.get("available"):
            return None, (None, None), detector.get("reason", "no detector")
        auc = detector["evaluation"]["overall"]["roc_auc"]
        return auc["value"], (auc["ci_low"], auc["ci_high"]), None
    if name == "reader_auc":
        reader = reader_summary(audit)
        if not reader or reader["auc"] is None:
            return None, (None, None), (reader or {}).get("error") or "no closed reader study linked"
        return reader["ci_high"], (reader["auc"], reader["ci_high"]), None
    return None, (None, None), "unknown criterion"


def evaluate_criteria(audit: Audit, results: dict | None = None) -> list[dict]:
    results = results if results is not None else results_of(audit)
    rows = []
    for name, spec in audit.effective_criteria().items():
        value, ci, reason = _value_for(name, results, audit)
        threshold, direction = spec["threshold"], spec["direction"]
        if not spec.get("enabled", True):
            status, reason = "N/A", "not selected for this audit"
        elif reason is not None or value is None:
            status = "N/A"
        else:
            status = "PASS" if (value <= threshold if direction == "max" else value >= threshold) else "FAIL"
        rows.append({
            "name": name, "basis": spec["basis"], "value": value, "ci": list(ci), "threshold": threshold,
            "direction": direction, "status": status, "reason": reason,
            "value_text": format_cell(value), "ci_text": format_cell(tuple(ci)) if any(v is not None for v in ci) else "n/a",
            "threshold_text": f"{'≤' if direction == 'max' else '≥'} {format_cell(threshold)}",
        })
    return rows
