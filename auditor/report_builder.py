"""Audit results → report document (the JSON twin) with the sections of a regulatory-style report.

Criteria are evaluated here once, from stored stage results, so the PDF, the JSON twin, the web page and the
API all show the same verdicts.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone as dt_timezone

from django.utils import timezone

from .models import Audit, ImageSet
from .report_sections import (
    data_section,
    detector_section,
    fidelity_section,
    limitations_section,
    memorization_section,
    methods_section,
    phototype_section,
    reader_section,
    reader_summary,
)
from .reporting import software_version
from .reports import Callout, Facts, Paragraph, ReportDocument, Section, Table, format_cell


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


def _utc(moment: datetime | None) -> str | None:
    return moment.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def summary_section(criteria: list[dict]) -> Section:
    counts = Counter(row["status"] for row in criteria)
    verdict = "fail" if counts["FAIL"] else "pass"
    text = (f"{counts['FAIL']} of {counts['PASS'] + counts['FAIL']} evaluated criteria failed."
            if counts["FAIL"] else f"All {counts['PASS']} evaluated criteria passed.")
    if counts["N/A"]:
        text += f" {counts['N/A']} criteria were not evaluated (reasons in the table notes and section 11)."
    table = Table(["Criterion", "Compared value", "95% CI", "Threshold", "Status"],
                  [[row["name"], row["value"], tuple(row["ci"]) if any(v is not None for v in row["ci"]) else None,
                    row["threshold_text"], row["status"]] for row in criteria],
                  "Pre-specified acceptance criteria (frozen when the audit started)", status_column=4)
    notes = [f"{row['name']}: {row['basis']}" + (f" — not evaluated: {row['reason']}" if row["status"] == "N/A" and row["reason"] else "")
             for row in criteria]
    return Section(1, "Executive summary", [Callout(verdict, text), table, Paragraph("\n".join(notes))])


def scope_section(audit: Audit) -> Section:
    generated = audit.generated_set
    return Section(2, "Intended use and scope", [Facts([
        ("Generated set", generated.name), ("Kind", generated.kind),
        ("Intended use", generated.intended_use or "not stated by the submitter"),
        ("Description", generated.description or "—"),
        ("Generator", f"{generated.generator_name or 'not stated'} {generated.generator_version}".strip()),
    ])])


def _set_row(label: str, image_set: ImageSet | None) -> list[tuple[str, str]]:
    if image_set is None:
        return []
    rows = [(f"{label} set", f"{image_set.name} ({image_set.images.count()} images, created {_utc(image_set.created_at)})"),
            (f"{label} manifest SHA-256", image_set.manifest_sha256)]
    if image_set.generator_weights_sha256:
        rows.append((f"{label} generator weights SHA-256", image_set.generator_weights_sha256))
    return rows


def traceability_section(audit: Audit, results: dict) -> Section:
    extractor = (results.get("fidelity") or {}).get("extractor") or {}
    detector = results.get("detector") or {}
    rows = [("Audit", f"#{audit.pk} {audit.name}"), ("Organisation", str(audit.organisation)),
            ("Operator", audit.created_by.username if audit.created_by else "—"),
            ("Started", _utc(audit.started_at) or "—"), ("Criteria frozen", _utc(audit.locked_at) or "—")]
    rows += _set_row("Generated", audit.generated_set) + _set_row("Reference", audit.reference_set)
    rows += _set_row("Training", audit.training_set) + _set_row("Baseline", audit.baseline_set)
    rows += [("Feature extractor", f"{extractor.get('extractor', '—')} [{extractor.get('preprocessing_id', '')}]"),
             ("Extractor weights SHA-256", extractor.get("weights_sha256", "—"))]
    if detector.get("available"):
        rows += [("Detector", f"run #{detector['detector_run']} [{detector['preprocessing']}]"),
                 ("Detector weights SHA-256", detector["detector_sha256"])]
    return Section(3, "Identification and traceability", [Facts(rows)])


def build_document(audit: Audit, *, version: int, status: str, prepared_by, approved_by=None, approved_at=None) -> ReportDocument:
    results = results_of(audit)
    criteria = evaluate_criteria(audit, results)
    sections = [
        summary_section(criteria), scope_section(audit), traceability_section(audit, results), data_section(audit),
        methods_section(audit, results), fidelity_section(audit, results), phototype_section(audit, results),
        memorization_section(audit, results), detector_section(audit, results), reader_section(audit),
        limitations_section(audit, results, criteria),
        Section(12, "Sign-off", [Facts([
            ("Prepared by", prepared_by.username if prepared_by else "—"),
            ("Reviewed and approved by", approved_by.username if approved_by else "pending (draft)"),
            ("Approved at (UTC)", _utc(approved_at) or "—"),
            ("Approval rule", "an organisation admin other than the preparer; approval issues a new version"),
        ])]),
    ]
    return ReportDocument(
        report_id=f"DA-{audit.pk:05d}", version=version, status=status, title=f"Synthetic image audit: {audit.name}",
        generated_at_utc=_utc(timezone.now()), software_version=software_version(),
        seeds={"audit": int(audit.seed)}, prepared_by=prepared_by.username if prepared_by else "—",
        approved_by=approved_by.username if approved_by else None, approved_at_utc=_utc(approved_at), sections=sections,
    )
