"""Report section 10, "Fitness for purpose: classifier utility", from the utility stage's stored result."""
from __future__ import annotations

from auditor.models import Audit
from auditor.reporting import Callout, Chart, Facts, Paragraph, Section, Table

NUMBER, TITLE = 10, "Fitness for purpose: classifier utility"
METRIC_TITLES = {"auroc": "AUROC", "balanced_accuracy": "balanced accuracy",
                 "high_risk_sensitivity": "high-risk sensitivity at 90% specificity"}
KIND_TITLES = {"real_only": "real only (TRTR, the yardstick)", "synthetic_only": "generated only (TSTR)",
               "augmented": "real + generated", "real_added": "real + held-out real (negative control)",
               "swapped": "real + generated, labels swapped (positive control)",
               "all_real": "real + the whole held-out real pool"}
ORDER = ("real_only", "augmented", "real_added", "swapped", "synthetic_only", "all_real")


def _interval(estimate: dict | None, key: str = "ci") -> tuple | None:
    block = (estimate or {}).get(key) or {}
    return (block.get("low"), block.get("high")) if block else None


def _value(estimate: dict | None):
    return (estimate or {}).get("value")


def _conditions_table(result: dict) -> Table:
    conditions = sorted(result["conditions"], key=lambda c: (ORDER.index(c["kind"]), c["ratio"] or 0))
    rows = []
    for condition in conditions:
        figures, gain = condition["figures"], condition.get("gain") or {}
        rows.append([KIND_TITLES[condition["kind"]], condition["ratio"], round(condition["n_real_train"] + condition["n_added"]),
                     _value(figures["auroc"]), _interval(figures["auroc"]), _value(figures["balanced_accuracy"]),
                     _value(figures["high_risk_sensitivity"]), _value(gain.get("auroc")), _interval(gain.get("auroc")),
                     _interval(gain.get("auroc"), "nb_ci")])
    return Table(["Training set", "ratio", "n train", "AUROC", "95% CI", "bal. acc.", "high-risk sens.", "AUROC gain",
                  "95% CI (bootstrap)", "95% CI (Nadeau-Bengio)"], rows,
                 "Trained on each set, tested on the same real images (mean over folds and repeats; gain = minus "
                 "real only, paired)", digits=[0, 2, 0, 3, 3, 3, 3, 3, 3, 3])


def _curve(result: dict, margin: float) -> Chart:
    def series(kind: str, name: str) -> dict | None:
        points = sorted((c for c in result["conditions"] if c["kind"] == kind), key=lambda c: c["ratio"])
        if not points:
            return None
        gains = [c["gain"]["auroc"] for c in points]
        return {"name": name, "x": [c["ratio"] for c in points], "y": [g["value"] for g in gains],
                "lower": [(g.get("ci") or {}).get("low") for g in gains],
                "upper": [(g.get("ci") or {}).get("high") for g in gains]}

    curves = [s for s in (series("augmented", "real + generated"),
                          series("real_added", "real + held-out real (negative control)"),
                          series("swapped", "labels swapped (positive control)")) if s]
    return Chart("line", "AUROC gain on real test images against generated images per real training image (95% CI)",
                 {"series": curves, "reference": {"value": margin, "label": f"non-inferiority margin {margin:+g}"}},
                 x_label="added images per real training image", y_label="AUROC gain")


def _consistency_table(consistency: dict) -> Table:
    rows = [[row["class"], row["synthetic_n"], row["synthetic_share"], row["real_n"], row["real_share"]]
            for row in consistency["per_class"]]
    rows.append(["mean over classes", None, consistency.get("synthetic_mean"), None, consistency.get("real_mean")])
    return Table(["Class", "generated n", "given its own label", "real n", "given its own label (out of fold)"], rows,
                 "Label consistency (TRTS): a classifier trained on every real image labels the generated ones",
                 digits=[0, 0, 3, 0, 3])


def _subgroup_table(result: dict) -> Table | None:
    rows = []
    for row in result.get("subgroups") or []:
        rows.append([row["field"], row["value"], row["n"], _value(row["real_only"]["auroc"]),
                     _value(row["augmented"]["auroc"]), _value(row["gain"]["auroc"]), _interval(row["gain"]["auroc"]),
                     _value((row.get("real_added_gain") or {}).get("auroc")), "yes" if row["underpowered"] else "no"])
    if not rows:
        return None
    return Table(["Subgroup", "value", "n test", "AUROC real only", "AUROC real + generated", "gain", "95% CI",
                  "gain, held-out real", "under-powered"], rows,
                 f"By subgroup of the real test images (under-powered below {result['design']['min_subgroup_n']} "
                 f"images or {result['design']['min_subgroup_class_n']} of a class)", digits=[0, 0, 0, 3, 3, 3, 3, 3, 0])


def _fairness_table(result: dict) -> Table | None:
    rows = []
    for gap in result.get("fairness") or []:
        if gap["real_only"] is None:
            rows.append([gap["field"], METRIC_TITLES[gap["metric"]], None, None, None, None, None, gap["note"]])
            continue
        rows.append([gap["field"], METRIC_TITLES[gap["metric"]], _value(gap["real_only"]), _value(gap["augmented"]),
                     _value(gap["change"]), _interval(gap["change"]),
                     f"{gap['worst_real_only']} < {gap['best_real_only']}", gap["note"]])
    if not rows:
        return None
    return Table(["Subgroup", "figure", "gap, real only", "gap, real + generated", "change", "95% CI",
                  "worst < best (real only)", "note"], rows,
                 "Fairness gap: best minus worst powered subgroup (a negative change narrows it)",
                 digits=[0, 0, 3, 3, 3, 3, 0, 0])


def utility_section(audit: Audit, results: dict) -> Section:
    stage = results.get("utility")
    if not stage:
        return Section(NUMBER, TITLE, [Callout("warning", "Not computed.")])
    spec = audit.effective_criteria().get("utility_gain", {})
    margin = float(spec.get("threshold", -0.02))
    intro = Paragraph(
        "Does adding these images to a training set help a classifier on real patients, and for whom? Looking real "
        "does not answer it: neither IS nor FID predicted how well a classifier trained on generated images did on "
        "real ones (Ravuri & Vinyals 2019), and in dermatology adding generated images often did not help (Carrasco "
        "Limeros et al. 2022) or helped most out of distribution and for under-represented groups (Ktena et al. "
        "2024), with gains levelling off and staying below those of real images (Sagers et al. 2023). So a classifier "
        f"of the reference's '{stage.get('label_field')}' classes is trained with and without the generated images "
        "and always tested on real images it never saw: the real images are cut into folds by lesion/patient and "
        "class, repeated with recorded seeds; half of each fold's training side is the real training set, the other "
        "half held-out real images (the negative control); generated images only ever train.")
    if stage.get("error"):
        return Section(NUMBER, TITLE, [intro, Callout("warning", f"Not evaluated: {stage['error']}.")])
    result = stage["result"]
    design, decision = result["design"], result["decision"]
    by_kind = {c["key"]: c for c in result["conditions"]}
    tstr, trtr = by_kind.get("synthetic_only"), by_kind["real_only"]
    facts = [
        ("Classifier", result["classifier"]),
        ("Design", f"{design['folds']} folds x {design['repeats']} repeats (seeds {', '.join(map(str, result['seeds']))}); "
                   f"class mix of the added images: {design['class_mix']}; {design['n_bootstrap']} bootstrap resamples"),
        ("Classes (real / generated)", "; ".join(f"{c}: {result['real_by_class'][c]} / {result['synthetic_by_class'][c]}"
                                                 for c in result["classes"])),
        ("High-risk classes", ", ".join(result["high_risk_classes"]) or "none among the classes"),
        ("Deciding ratio", f"{decision['ratio']:g} generated per real training image (requested "
                           f"{decision['requested_ratio']}){'; ' + decision['note'] if decision['note'] else ''}"),
        ("Rule", f"PASS when the lower 95% bound of the AUROC gain at the deciding ratio is at least {margin:+g}"),
    ]
    if tstr and _value(tstr["figures"]["auroc"]) is not None and _value(trtr["figures"]["auroc"]):
        ratio = _value(tstr["figures"]["auroc"]) / _value(trtr["figures"]["auroc"])
        facts.append(("TSTR / TRTR (AUROC)", f"{_value(tstr['figures']['auroc']):.3f} / "
                                             f"{_value(trtr['figures']['auroc']):.3f} = {ratio:.3f}"))
    if result["synthetic_excluded"] or stage.get("generated_unlabelled"):
        facts.append(("Generated images not used", f"{stage.get('generated_unlabelled', 0)} without a label; other "
                                                   f"classes: {result['synthetic_excluded'] or 'none'}"))
    if stage.get("reference_classes_left_out"):
        facts.append(("Reference classes left out (too few lesions)", str(stage["reference_classes_left_out"])))
    blocks = [intro, Facts(facts), _conditions_table(result), _curve(result, margin), _consistency_table(result["label_consistency"])]
    for table in (_subgroup_table(result), _fairness_table(result)):
        if table is not None:
            blocks.append(table)
    if stage.get("phototype_source") == "estimates":
        blocks.append(Callout("warning", "The reference has no dermatologist phototype labels: the phototype subgroups "
                                         "come from the pixel estimator, which is not validated (section 7)."))
    delong = decision.get("delong")
    checks = [f"Intervals: {result['methods']['ci']}; beside them {result['methods']['nb_ci']}, which also charges the "
              "variability of the training sets and is conservative."]
    if delong:
        checks.append(f"Cross-check on the first repeat's pooled scores: DeLong's paired AUROC difference "
                      f"{delong['difference']:+.3f} [{delong['ci']['low']:+.3f}, {delong['ci']['high']:+.3f}], "
                      f"p = {delong['p_value']:.3g}.")
    checks += result.get("notes") or []
    blocks.append(Paragraph(" ".join(checks)))
    return Section(NUMBER, TITLE, blocks)
