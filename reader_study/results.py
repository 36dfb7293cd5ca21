"""A study's answers as a table, a CSV export, and the statistics computed from them.

The maths lives in reader_study.statistics / reader_study.mrmc (no Django); this module only gathers the
answers, calls those functions and records where every number came from.
"""
from __future__ import annotations

import csv
import hashlib
import io
import itertools
import statistics as pystats
from collections import defaultdict
from typing import Any

import pandas as pd
from django.db import transaction
from django.utils import timezone

from . import statistics as stats
from .blinding import RENDERING
from .models import Answer, Study, StudyResult

RESULTS_VERSION = "reader-study-results-1"
N_BOOTSTRAP = 2000
MRMC_COVARIANCE = "unbiased"

CSV_COLUMNS = [
    "study", "reader", "reader_specialty", "reader_years_experience", "reader_board_certified", "case", "arm",
    "image_set", "image_id", "image_sha256", "truth", "reference_diagnosis", "showing", "position", "call",
    "confidence", "quality", "diagnosis", "served_at", "answered_at", "duration_ms", "revisions",
]


def answer_rows(study: Study) -> list[dict[str, Any]]:
    """One row per stored answer, ordered by reader and position (the order they were read in)."""
    answers = (
        Answer.objects.filter(showing__assignment__study=study)
        .select_related("showing__assignment__reader__reader_profile", "showing__case__arm")
        .order_by("showing__assignment__reader__username", "showing__position")
    )
    rows = []
    for answer in answers:
        showing, case = answer.showing, answer.showing.case
        reader = showing.assignment.reader
        profile = getattr(reader, "reader_profile", None)
        rows.append({
            "study": study.pk, "reader": reader.username,
            "reader_specialty": profile.specialty if profile else "",
            "reader_years_experience": profile.years_experience if profile else "",
            "reader_board_certified": profile.board_certified if profile else "",
            "case": case.pk, "arm": case.arm.label, "image_set": case.arm.image_set_id, "image_id": case.image_id,
            "image_sha256": case.image_sha256, "truth": "synthetic" if case.truth_synthetic else "real",
            "reference_diagnosis": case.reference_diagnosis, "showing": showing.number, "position": showing.position,
            "call": "" if answer.called_synthetic is None else ("synthetic" if answer.called_synthetic else "real"),
            "confidence": answer.confidence, "quality": answer.quality, "diagnosis": answer.diagnosis,
            "served_at": answer.served_at.isoformat(), "answered_at": answer.answered_at.isoformat(),
            "duration_ms": answer.duration_ms, "revisions": answer.revisions,
        })
    return rows


def answers_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row[k] is None else row[k] for k in CSV_COLUMNS})
    return buffer.getvalue()


def _rating(study: Study, row: dict) -> float:
    """ROC rating, higher = more confident "synthetic": signed confidence, or the bare call without one."""
    called = row["call"] == "synthetic"
    if study.asks_confidence and row["confidence"] is not None:
        return float(stats.signed_confidence([called], [row["confidence"]])[0])
    return 1.0 if called else 0.0


def _guarded(compute) -> Any:
    """Run one analysis; a design that does not support it yields its reason instead of an error page."""
    try:
        return stats.to_jsonable(compute())
    except (ValueError, stats.DesignError) as exc:
        return {"error": str(exc)}


def _complete_readers(rows: list[dict]) -> tuple[set[str], list[str]]:
    """Readers who read every case that appears in ``rows``, and (sorted) those who did not."""
    all_cases = {r["case"] for r in rows}
    by_reader: dict[str, set] = defaultdict(set)
    for r in rows:
        by_reader[r["reader"]].add(r["case"])
    complete = {reader for reader, cases in by_reader.items() if cases == all_cases}
    return complete, sorted(set(by_reader) - complete)


def _reading_table(study: Study, rows: list[dict], readers: set[str], modality: str) -> pd.DataFrame:
    return pd.DataFrame([
        {"reader": r["reader"], "modality": modality, "case": str(r["case"]),
         "truth": int(r["truth"] == "synthetic"), "rating": _rating(study, r)}
        for r in rows if r["reader"] in readers
    ], columns=["reader", "modality", "case", "truth", "rating"])


def _mrmc(study: Study, first: list[dict], case_ids: set[int] | None = None) -> Any:
    """Reader-averaged AUC (OR-Hillis, random readers and cases) over readers who read every case."""
    rows = [r for r in first if case_ids is None or r["case"] in case_ids]
    complete, incomplete = _complete_readers(rows)
    table = _reading_table(study, rows, complete, "study")

    def analyse():
        data = stats.mrmc_data_from_table(table)
        result = stats.analyze_single_modality(data, "study", covariance=MRMC_COVARIANCE)
        return {"readers_included": sorted(complete), "readers_excluded_incomplete": incomplete, **result.to_dict()}

    return _guarded(analyse)


def _arm_comparison(study: Study, first: list[dict], arm_a: tuple[str, set[int]], arm_b: tuple[str, set[int]],
                    real_cases: set[int]) -> dict:
    """Arm a − arm b (two generators): each arm's synthetic cases plus all real cases, read by the same readers."""
    (label_a, cases_a), (label_b, cases_b) = arm_a, arm_b
    rows = [r for r in first if r["case"] in cases_a | cases_b | real_cases]
    complete, incomplete = _complete_readers(rows)

    def analyse():
        arms = [
            stats.mrmc_data_from_table(_reading_table(
                study, [r for r in rows if r["case"] in cases | real_cases], complete, label))
            for label, cases in ((label_a, cases_a), (label_b, cases_b))
        ]
        result = stats.compare_arms(*arms)
        return {"readers_included": sorted(complete), "readers_excluded_incomplete": incomplete, **result.to_dict()}

    return {"arm_a": label_a, "arm_b": label_b, **_guarded(analyse)}


def compute_results(study: Study, rows: list[dict] | None = None, *, n_bootstrap: int = N_BOOTSTRAP) -> dict:
    rows = answer_rows(study) if rows is None else rows
    first = [r for r in rows if r["showing"] == 1]
    repeats = {(r["reader"], r["case"]): r for r in rows if r["showing"] == 2}
    readers = sorted({r["reader"] for r in rows})
    boot = {"n_bootstrap": n_bootstrap, "seed": 0}
    payload: dict[str, Any] = {
        "study": {"id": study.pk, "name": study.name, "status": study.status, "seed": study.seed,
                  "repeat_fraction": study.repeat_fraction, "balance_by": study.balance_by,
                  "confidence_scale": study.confidence_scale},
        "arms": [{"label": arm.label, "image_set": arm.image_set_id, "truth": "synthetic" if arm.truth_synthetic else "real",
                  "count": arm.count, "manifest_sha256": arm.image_set.manifest_sha256,
                  "generator_name": arm.image_set.generator_name, "generator_version": arm.image_set.generator_version,
                  "generator_weights_sha256": arm.image_set.generator_weights_sha256}
                 for arm in study.arms.select_related("image_set")],
        "counts": {"cases": study.cases.count(), "synthetic_cases": study.cases.filter(truth_synthetic=True).count(),
                   "readers_invited": study.assignments.count(), "readers_with_answers": len(readers),
                   "answers": len(rows), "repeat_answers": len(repeats)},
        "provenance": {"results_version": RESULTS_VERSION, "rendering": RENDERING, "bootstrap": boot,
                       "mrmc_covariance": MRMC_COVARIANCE, "positive_class": "synthetic",
                       "answers_sha256": hashlib.sha256(answers_csv(rows).encode()).hexdigest(),
                       "computed_at": timezone.now().isoformat()},
        "interim": False,
        "notes": [],
    }
    per_reader = []
    for reader in readers:
        mine = [r for r in first if r["reader"] == reader]
        entry: dict[str, Any] = {"reader": reader, "answers": len(mine),
                                 "median_seconds_per_case": pystats.median(r["duration_ms"] for r in mine) / 1000 if mine else None}
        if rows:
            sample = next(r for r in rows if r["reader"] == reader)
            entry["profile"] = {k: sample[k] for k in ("reader_specialty", "reader_years_experience", "reader_board_certified")}
        if study.ask_call and mine:
            entry["performance"] = _guarded(lambda m=mine: stats.reader_performance(
                [r["truth"] == "synthetic" for r in m], [r["call"] == "synthetic" for r in m],
                [_rating(study, r) for r in m], reader=reader))
            pairs = [(r["call"], repeats[(reader, r["case"])]["call"]) for r in mine if (reader, r["case"]) in repeats]
            if pairs:
                entry["intra_reader_kappa"] = _guarded(lambda p=pairs: stats.intra_reader_kappa(
                    [a for a, _ in p], [b for _, b in p], **boot))
        per_reader.append(entry)
    payload["readers"] = per_reader

    if study.ask_call and first:
        calls = defaultdict(dict)
        for r in first:
            calls[r["reader"]][r["case"]] = r["call"]
        if len(calls) >= 2:
            payload["pairwise_kappa"] = _guarded(lambda: stats.pairwise_cohen_kappa(calls, **boot))
            payload["fleiss_kappa"] = _guarded(lambda: stats.fleiss_kappa_across_readers(calls, **boot))
        payload["mrmc"] = {"all_synthetic_vs_real": _mrmc(study, first)}
        real_cases = set(study.cases.filter(truth_synthetic=False).values_list("pk", flat=True))
        synthetic_arms = [a for a in study.arms.all() if a.truth_synthetic]
        if len(synthetic_arms) > 1:
            arm_cases = {arm.label: set(arm.cases.values_list("pk", flat=True)) for arm in synthetic_arms}
            for label, cases in arm_cases.items():
                payload["mrmc"][f"arm:{label}"] = _mrmc(study, first, cases | real_cases)
            payload["mrmc"]["arm_comparisons"] = [
                _arm_comparison(study, first, a, b, real_cases)
                for a, b in itertools.combinations(arm_cases.items(), 2)
            ]
            payload["notes"].append(
                "Generator arms are analysed one at a time against all real cases, and every pair of arms is "
                "compared (mrmc.arm_comparisons: difference of reader-averaged AUCs, arm a − arm b). The arms share "
                "their readers and real cases but not their synthetic cases, so the comparison uses the OR-Hillis "
                "method with DeLong structural-component covariances for this partially paired design "
                "(covariance_method \"delong-partially-paired\"), over readers who read every case of both arms."
            )

    if study.ask_quality:
        rated = [r for r in first if r["quality"] is not None]
        real = [r for r in rated if r["truth"] == "real"]
        synthetic = [r for r in rated if r["truth"] == "synthetic"]
        payload["quality"] = _guarded(lambda: stats.compare_likert_quality(
            [r["quality"] for r in real], [r["quality"] for r in synthetic],
            real_cases=[r["case"] for r in real], synthetic_cases=[r["case"] for r in synthetic], **boot))

    if study.ask_diagnosis:
        labelled = [r for r in first if r["reference_diagnosis"] and r["diagnosis"]]
        payload["diagnosis"] = {
            group: _guarded(lambda g=members: stats.diagnosis_agreement(
                [r["reference_diagnosis"] for r in g], [r["diagnosis"] for r in g], **boot))
            for group, members in (
                ("all", labelled),
                ("real", [r for r in labelled if r["truth"] == "real"]),
                ("synthetic", [r for r in labelled if r["truth"] == "synthetic"]),
            ) if members
        }
    return payload


def stored_results(study: Study) -> StudyResult:
    """The frozen results of a closed study (computed on first request if the background task has not yet)."""
    if not study.is_closed:
        raise ValueError("results are stored only for closed studies")
    existing = StudyResult.objects.filter(study=study).first()
    if existing is not None:
        return existing
    rows = answer_rows(study)
    payload = compute_results(study, rows)
    with transaction.atomic():
        result, _ = StudyResult.objects.get_or_create(
            study=study, defaults={"payload": payload, "answers_sha256": payload["provenance"]["answers_sha256"]}
        )
    return result


def interim_results(study: Study) -> dict:
    payload = compute_results(study)
    payload["interim"] = True
    payload["notes"].insert(0, "Interim: the study is still running; these numbers will change.")
    return payload
