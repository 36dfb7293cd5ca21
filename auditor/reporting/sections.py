"""Report sections 4–9, 11 and 12 (10: utility_section.py), each built from stored stage results (no computation here beyond formatting)."""
from __future__ import annotations

from collections import Counter

from auditor.models import Audit, ImageSet
from auditor.models.storage import media_exists
from auditor.reporting import Callout, Chart, Facts, ImageGrid, ImageRef, Paragraph, Section, Table
from auditor.reporting.criteria import holm_distinguishable, reader_summary
from deepfake_detector.evaluate import roc_points

PHOTOTYPES = ["1", "2", "3", "4", "5", "6", "undetermined"]
ROMAN = {"1": "I", "2": "II", "3": "III", "4": "IV", "5": "V", "6": "VI", "undetermined": "undet."}


def _ci(block) -> tuple | None:
    if not block:
        return None
    if isinstance(block, dict):
        return (block.get("low"), block.get("high"))
    return tuple(block)


def _sets(audit: Audit) -> list[tuple[str, ImageSet]]:
    pairs = [("generated", audit.generated_set), ("reference", audit.reference_set), ("training", audit.training_set),
             ("baseline", audit.baseline_set)]
    return [(label, s) for label, s in pairs if s is not None]


def data_section(audit: Audit) -> Section:
    blocks = []
    for label, image_set in _sets(audit):
        combos = Counter()
        for dx, fst, est, acq in image_set.images.values_list("diagnosis", "fitzpatrick", "fitzpatrick_estimate", "acquisition"):
            phototype = f"{ROMAN[str(fst)]} (label)" if fst else (f"{ROMAN[str(est)]} (est.)" if est else "undetermined")
            combos[(dx or "unlabelled", phototype, acq or "unlabelled")] += 1
        rows = [[dx, ph, acq, n] for (dx, ph, acq), n in sorted(combos.items())]
        blocks.append(Table(["Diagnosis", "Phototype", "Acquisition", "n"], rows,
                            f"{label.capitalize()} set {image_set.name!r}: diagnosis × phototype × acquisition"))
        blocks.append(Facts([("Images", str(image_set.images.count())),
                             ("Ingest errors", str(image_set.ingest_errors.count())),
                             ("Duplicates (stored once)", str(image_set.duplicate_records.count()))]))
    return Section(4, "Data description", blocks)


def methods_section(audit: Audit, results: dict) -> Section:
    extractor = (results.get("fidelity") or {}).get("extractor") or {}
    detector = results.get("detector") or {}
    text = [
        f"Features: {extractor.get('extractor', 'n/a')}, preprocessing {extractor.get('preprocessing_id', 'n/a')}, "
        f"{extractor.get('feature_dim', 'n/a')}-d pooled features, cached by image content hash. Distances computed with "
        "this network are named after it: they are not Inception-V3 FID values and are not comparable with published FIDs.",
        "Fréchet distance (FD): float64, matrix square root through eigenvalues; 95% CI from a delete-a-group jackknife "
        "(10 seeded groups; a bootstrap biases FD upwards because resamples repeat rows). The real-vs-real floor is the FD between two disjoint random halves of the reference at the "
        "same N (mean of 5 splits); FD∞ extrapolates FD linearly in 1/N (Chong & Forsyth 2020).",
        "KID: unbiased MMD² with the cubic polynomial kernel, mean over random subsets (subset size capped at N), "
        "jackknife CI. Vendi and Inception/Mode scores likewise. Precision, recall, density and coverage: Naeem et al. 2020 with k = 5, bootstrap CIs.",
        "Diversity: Vendi score of features (cosine kernel) and mean MS-SSIM of 200 random pairs at 128 px "
        "(lower MS-SSIM = more diverse).",
        "Memorisation: a generated image is a copy candidate when it lies closer to its nearest training image than that "
        "image lies to its own nearest training neighbour (AuthPct rule, features and pixels), or is an exact/near "
        "duplicate (perceptual hash + SSIM ≥ 0.95). Rate with Wilson CI.",
        "Phototype: dermatologist labels where present; otherwise the Individual Typology Angle on skin pixels "
        "(Kinyanjui et al. 2020 thresholds), which counts only when validated against labels of the same acquisition type.",
        f"Seeds: every resampling derives from the audit seed {audit.seed}.",
    ]
    if detector.get("available"):
        text.append(f"Detector: ViT trained from scratch (timm), preprocessing {detector['preprocessing']}, temperature-scaled "
                    "on a validation split; evaluated on generated images vs real images it never saw, where recorded.")
    return Section(5, "Methods", [Paragraph(t) for t in text])


def _metric_row(name: str, suite: dict) -> list:
    fd, floor = suite.get("frechet") or {}, suite.get("real_floor") or {}
    kid, prdc, vendi = suite.get("kernel_distance") or {}, suite.get("precision_recall") or {}, suite.get("vendi_generated") or {}
    return [name, suite.get("frechet", {}).get("n_generated"), fd.get("value"), _ci(fd.get("ci")), floor.get("floor"),
            kid.get("value"), prdc.get("precision"), prdc.get("recall"), prdc.get("density"), prdc.get("coverage"), vendi.get("value")]


def fidelity_section(audit: Audit, results: dict) -> Section:
    fidelity = results.get("fidelity")
    if not fidelity:
        return Section(6, "Fidelity and diversity", [Callout("warning", "Not computed.")])
    suites = [("generated", fidelity["generated"])]
    if fidelity.get("negative_control"):
        suites.append(("reference half vs half (negative control)", fidelity["negative_control"]))
    if fidelity.get("baseline"):
        suites.append((f"baseline GAN ({fidelity.get('baseline_name', '')})", fidelity["baseline"]))
    if fidelity.get("copy_baseline"):
        suites.append(("copy baseline", fidelity["copy_baseline"]))
    label = fidelity["generated"]["frechet"]["label"]
    table = Table(["Set", "N", label, "95% CI", "real-vs-real floor", "KID", "Precision", "Recall", "Density", "Coverage", "Vendi"],
                  [_metric_row(name, suite) for name, suite in suites], "Fidelity and diversity against the reference (k = 5)")
    chart = Chart("bar", f"{label} with 95% CI, beside the real-vs-real floor",
                  {"categories": [name for name, _ in suites], "values": [s["frechet"]["value"] for _, s in suites],
                   "lower": [_ci(s["frechet"].get("ci"))[0] if s["frechet"].get("ci") else None for _, s in suites],
                   "upper": [_ci(s["frechet"].get("ci"))[1] if s["frechet"].get("ci") else None for _, s in suites],
                   "reference": {"value": fidelity["generated"]["real_floor"]["floor"], "label": "real-vs-real floor"}},
                  y_label="FD")
    diversity = fidelity.get("ms_ssim_diversity") or {}
    ms = [[name, (d or {}).get("mean"), _ci((d or {}).get("ci")), (d or {}).get("n_pairs")] for name, d in diversity.items()]
    blocks = [table, chart, Table(["Set", "mean MS-SSIM", "95% CI", "pairs"], ms, "Pixel diversity (lower = more diverse)")]
    fd_inf = fidelity["generated"].get("fd_infinity")
    if fd_inf:
        blocks.append(Paragraph(f"FD∞ (extrapolated to infinitely many generated images): {fd_inf['value']:.3f} "
                                f"(fit R² {fd_inf['r_squared']:.3f})."))
    return Section(6, "Fidelity and diversity", blocks)


def _subgroup_rows(breakdown: dict, value_keys: list[str]) -> list[list]:
    rows = []
    for group in breakdown.get("groups", []):
        result = group.get("result") or {}
        rows.append([ROMAN.get(group["group"], group["group"]), group["n"], group.get("n_reference"),
                     *[result.get(k) for k in value_keys], "yes" if group["underpowered"] else "no", group.get("error") or ""])
    return rows


def phototype_section(audit: Audit, results: dict) -> Section:
    photo = results.get("phototype")
    if not photo:
        return Section(7, "Phototype balance", [Callout("warning", "Not computed.")])
    blocks = []
    if not photo.get("may_drive_pass_fail"):
        blocks.append(Callout("warning", "Phototypes of the generated set come (at least partly) from the pixel estimator, "
                                         "which is not validated for this acquisition type: shown for information, not used for pass/fail."))
    balance = photo.get("balance")
    counts = photo.get("counts", {})
    total = sum(counts.values()) or 1
    if balance:
        target = balance["target"]
        blocks.append(Chart("distribution_vs_target", "Phototype distribution of the generated set vs target",
                            {"categories": [ROMAN[k] for k in PHOTOTYPES[:6]],
                             "observed": [balance["observed"].get(k, 0.0) for k in PHOTOTYPES[:6]],
                             "target": [target.get(k, 0.0) for k in PHOTOTYPES[:6]],
                             "observed_label": "generated", "target_label": f"target ({balance['target_name']})"}))
        blocks.append(Table(["Measure", "Value", "95% CI"], [
            ["Total variation distance", balance["total_variation"], _ci(balance["total_variation_ci"])],
            ["Earth mover's distance (types)", balance["earth_movers"], _ci(balance["earth_movers_ci"])],
            ["KL divergence (nats)", balance["kl_divergence"], None],
            ["Pielou evenness", balance["pielou_evenness"], None],
            [f"Chi-square ({balance['chi_square_test']}, dof {balance['chi_square_dof']})", balance["chi_square"], None],
            ["Chi-square p-value", balance["chi_square_p"], None],
        ], "Balance against the target", digits=3))
        for warning in balance.get("warnings", []):
            blocks.append(Callout("warning", warning))
    blocks.append(Table(["Phototype", "n", "share"], [[ROMAN[k], counts.get(k, 0), counts.get(k, 0) / total] for k in PHOTOTYPES],
                        "Generated set by phototype (labels first, then estimates)"))
    blocks.append(Facts([(f"source: {k}", str(v)) for k, v in photo.get("sources", {}).items()]))
    validation_rows = []
    for acquisition, report in (photo.get("estimator_validation") or {}).items():
        validation_rows.append([acquisition, report.get("n_compared", report.get("n_labelled")), report.get("exact"),
                                report.get("within_one"), report.get("spearman_rho"), report.get("macro_mae"),
                                "yes" if report.get("validated") else "no"])
    if validation_rows:
        blocks.append(Table(["Acquisition", "n", "exact", "±1", "Spearman ρ", "macro-MAE", "validated"], validation_rows,
                            "Pixel estimator vs dermatologist labels on the reference set"))
    else:
        blocks.append(Paragraph("No labelled reference images: the pixel estimator could not be validated here."))
    by_phototype = (results.get("fidelity") or {}).get("by_phototype") or {}
    if by_phototype.get("prdc"):
        blocks.append(Table(["Phototype", "n gen.", "n ref.", "Precision", "Recall", "Under-powered", "Note"],
                            _subgroup_rows(by_phototype["prdc"], ["precision", "recall"]),
                            f"Fidelity by phototype (k = 5; under-powered below n = {by_phototype['prdc']['min_n']})"))
    if by_phototype.get("kid"):
        blocks.append(Table(["Phototype", "n gen.", "n ref.", "KID", "Under-powered", "Note"],
                            _subgroup_rows(by_phototype["kid"], ["value"]), "KID by phototype"))
    detector_groups = (((results.get("detector") or {}).get("evaluation") or {}).get("groups")) or []
    if detector_groups:
        blocks.append(Table(["Phototype", "n", "real", "synthetic", "AUC", "accuracy", "estimated"],
                            [[g["group"], g["n"], g["n_real"], g["n_synthetic"], (g.get("roc_auc") or {}).get("value"),
                              g["accuracy_at_0_5"]["value"], "yes" if g["estimated"] else "no"] for g in detector_groups],
                            "Detector by phototype"))
    return Section(7, "Phototype balance", blocks)


def _rate_row(name: str, block: dict | None) -> list:
    block = block or {}
    return [name, block.get("n"), block.get("copies"), block.get("copy_rate"), _ci(block.get("copy_ci")),
            block.get("error") or block.get("against") or ""]


def memorization_section(audit: Audit, results: dict) -> Section:
    memo = results.get("memorization")
    if not memo:
        return Section(8, "Memorization", [Callout("warning", "Not computed.")])
    copies = memo.get("copies") or {}
    blocks: list = [Facts([
        ("Compared against", f"{memo['training_set']}" + (" (the reference set: no training set given)"
                                                         if memo["training_is_reference"] else " (training set)")),
        ("Copy rule", "a generated image is a copy when its best match among the training images, over flips, 90° "
                      "rotations, crops down to 50 % of the area and rescaling, verified in fine pixel detail, scores "
                      "above the threshold"),
        ("Threshold", f"{copies['threshold']:.4f}, {copies['threshold_source']}" if copies else "—"),
    ])]
    if copies:
        blocks.append(Table(
            ["Set", "N", "copies", "copy rate", "95% CI", "note"],
            [_rate_row("generated", copies.get("generated")),
             _rate_row("held-out real images (negative control)", copies.get("held_out_real")),
             _rate_row("exact copies of training images (positive control)", copies.get("exact_copies")),
             _rate_row("transformed copies of training images (positive control)", copies.get("transformed_copies"))],
            "Calibrated copy detection (Wilson 95% CIs; for the copy baselines the rate is the share detected)"))
    generated = memo["generated"]
    rows = [["generated", generated["n_generated"], generated["memorized_fraction"], _ci(generated["memorized_ci"]),
             generated.get("real_baseline_copy_fraction"), generated["feature_copy_fraction"],
             generated.get("pixel_copy_fraction"), generated["exact_duplicates"], generated["near_duplicates"]]]
    if memo.get("copy_baseline"):
        copy = memo["copy_baseline"]
        rows.append(["exact copy baseline", copy["n"], copy["memorized_fraction"], _ci(copy["memorized_ci"]),
                     None, None, None, None, None])
    blocks.append(Table(["Set", "N", "AuthPct candidate rate", "95% CI", "same rule, real held-out", "feature AuthPct",
                         "pixel AuthPct", "exact dup.", "near dup."], rows,
                        "Descriptive only: nearest-neighbour (AuthPct) rates in feature space, beside the rate the same "
                        "rule gives real images it never saw"))
    pairs = [ImageRef(p["path"], p["caption"]) for p in memo.get("pairs", []) if media_exists(p["path"])]
    if pairs:
        blocks.append(ImageGrid("Closest generated (left) / training (right) pairs by the copy rule", pairs, columns=2))
    return Section(8, "Memorization", blocks)


def _detectability_rows(name: str, block: dict) -> list[list]:
    rows = []
    for key, label in (("audited", "generated set"), ("negative_control", "reference half vs half (negative control)"),
                       ("positive_control", "baseline set (positive control)")):
        item = block.get(key)
        if key == "positive_control" and item and item.get("label"):
            label = f"{item['label']} (positive control)"
        if item is None:
            continue
        if item.get("error"):
            rows.append([name, label, None, None, None, None, None, f"not computed: {item['error']}"])
            continue
        null = (item.get("null_low"), item.get("null_high")) if item.get("null_low") is not None else None
        rows.append([name, label, item["auc"], _ci(item["ci"]), null, item["n_real"], item["n_synthetic"],
                     "distinguishable" if item["distinguishable"] else "not distinguishable"])
    return rows


def _roc(item: dict) -> dict | None:
    """The ROC of a cross-fit's stored out-of-fold scores (real rows first)."""
    if not item.get("scores"):
        return None
    return roc_points([0] * item["n_real"] + [1] * item["n_synthetic"], item["scores"])


def detector_section(audit: Audit, results: dict) -> Section:
    blocks: list = []
    detectability = results.get("detectability") or {}
    if detectability:
        vit, probe = detectability.get("vit") or {}, detectability.get("probe") or {}
        vit_method = (vit.get("audited") or {}).get("method", "")
        blocks.append(Paragraph(
            "Detectability is a classifier two-sample test: a classifier is trained on this generated set against the "
            "reference, cross-fitted so that every image is scored only by a model that never trained on it; an AUC "
            "of 0.5 means it cannot tell them apart. Two tests, one verdict: the set passes only if neither tells it "
            "apart beyond the threshold. The ViT reads the pixels at their own scale — native-resolution 64-px crops "
            "of a centred window, both classes re-encoded by the same JPEG encoder before cropping, the image's score "
            "the mean over a grid of tiles — because a whole-image resize removes the traces a generator's "
            f"upsampling leaves ({vit_method or 'not run'}). The probe is a logistic regression on the extractor's "
            "features, with a label-permutation null on the same folds. Each test also ran on one random half of the "
            "reference against the other (must not be distinguishable) and on a positive control it must detect at "
            "AUC ≥ 0.9: for the ViT the other reference half carrying a generator's 2× upsampling trace, a control as "
            "hard as real generators at this audit's resolution; for the probe the baseline set. A test that misses "
            "its positive control cannot support a PASS."))
        blocks.append(Table(["Test", "Set", "AUC", "95% CI", "permutation null 95%", "real", "synthetic", "outcome"],
                            _detectability_rows("ViT, cross-fitted", vit) + _detectability_rows("feature probe", probe),
                            "Detectability (out-of-fold AUC, DeLong 95% CI)"))
        audited = [(name, item) for name, item in (("ViT", vit.get("audited") or {}), ("feature probe",
                                                                                         probe.get("audited") or {}))
                   if item.get("auc") is not None]
        if audited:
            holm = holm_distinguishable([item for _, item in audited])
            blocks.append(Table(["Test", "AUC", "p (AUC > 0.5)", "Holm-adjusted p", "distinguishable from this reference"],
                                [[name, item["auc"], h["p_value"], h["holm_p_value"], "yes" if h["distinguishable"] else "no"]
                                 for (name, item), h in zip(audited, holm)],
                                "Is the set distinguishable at all? One-sided DeLong tests, Holm's correction across the "
                                "tests (family-wise 5 %); the verdict's rule needs no correction: every test must "
                                "pass on its own", digits=[0, 3, 4, 4, 0]))
        inputs = vit.get("inputs") or {}
        if inputs:
            blocks.append(Table(
                ["Set", "images", "formats", "median size", "window", "smaller than the window", "resized up to the crop"],
                [[name, facts["n"], ", ".join(f"{k} {v}" for k, v in sorted(facts["formats"].items())),
                  f"{facts['median_width']:.0f} × {facts['median_height']:.0f}" if facts["median_width"] else None,
                  facts["window_px"], facts["smaller_than_window"], facts["smaller_than_crop"]]
                 for name, facts in inputs.items()],
                "What the ViT's input keeps besides the generator: file formats (every image is re-encoded by one "
                "JPEG encoder first, but a reference that was JPEG-compressed or downscaled before it reached us keeps "
                "those traces in its pixels), pixel sizes, and images too small for a native crop"))
        curves = []
        for name, item in (("cross-fitted ViT", vit.get("audited") or {}), ("feature probe", probe.get("audited") or {})):
            roc = _roc(item)
            if roc:
                curves.append({"name": name, **roc, "auc": item["auc"]})
        if curves:
            blocks.append(Chart("roc", "ROC: generated vs real, out-of-fold scores", {"curves": curves},
                                x_label="false positive rate", y_label="true positive rate"))
    detector = results.get("detector") or {}
    if not detector.get("available"):
        blocks.append(Callout("info", f"Screen not run: {detector.get('reason', 'no detector')}."))
    else:
        overall = detector["evaluation"]["overall"]
        metric_rows = [[name, overall[key]["value"], (overall[key]["ci_low"], overall[key]["ci_high"])]
                       for name, key in [("ROC AUC", "roc_auc"), ("Average precision", "average_precision"),
                                         ("Accuracy at 0.5", "accuracy_at_0_5"), ("ECE before scaling", "ece_before_scaling"),
                                         ("ECE after scaling", "ece_after_scaling")]]
        blocks += [
            Paragraph("Screen (descriptive, never a verdict): would a detector trained on other generators catch these "
                      "images? A low AUC here says only that this generator differs from those it was trained on."),
            Facts([("Generated images", str(detector["n_generated"])),
                   ("Real images", f"{detector['n_reference']} ({'held out from detector training' if detector['reference_is_held_out'] else 'may include training images: optimistic'})"),
                   ("Mean P(synthetic), generated", f"{detector['mean_probability_generated']:.3f}"),
                   ("Mean P(synthetic), real", f"{detector['mean_probability_reference']:.3f}")]),
            Table(["Metric", "Value", "95% CI"], metric_rows, "Screen: a detector of other generators on this set"),
        ]
        robustness = detector["evaluation"].get("robustness_auc") or {}
        if robustness:
            blocks.append(Table(["Perturbation", "AUC", "95% CI"], [[k, v["value"], (v["ci_low"], v["ci_high"])] for k, v in robustness.items()],
                                "Screen: robustness"))
    explanations = results.get("explanations") or {}
    if explanations.get("available"):
        road = explanations["road"]
        target = explanations.get("target", "predicted class")
        images = f"{road['n_images']} generated images" if explanations.get("road_images") == "generated" else f"{road['n_images']} images"
        blocks.append(Paragraph(f"What gives these images away: Grad-CAM of the {target} of {explanations.get('detector', 'the detector')}. "
                                f"Faithfulness (ROAD, {images}): Grad-CAM {road['method_mean']:.3f} vs "
                                f"RandomCAM {road['random_mean']:.3f}; difference {road['difference_mean']:.3f} "
                                f"[{road['difference_ci_low']:.3f}, {road['difference_ci_high']:.3f}]; "
                                f"{'beats' if road['method_beats_random'] else 'does not beat'} the random baseline. "
                                f"All-zero maps: {road['share_all_zero_maps']:.0%}."))
        overlays = [ImageRef(o["path"], o["caption"]) for o in explanations["overlays"] if media_exists(o["path"])]
        if overlays:
            blocks.append(ImageGrid("Grad-CAM: most and least confident images of each class", overlays, columns=2))
    if not blocks:
        blocks.append(Callout("info", "Not run."))
    return Section(9, "Detectability and the detector screen", blocks)


def _estimate(value) -> tuple:
    """(estimate, (ci_low, ci_high)) of a stored proportion/kappa dict; (None, (None, None)) when absent."""
    if not isinstance(value, dict):
        return None, (None, None)
    point = value.get("estimate", value.get("kappa"))
    return point, (value.get("ci_low"), value.get("ci_high"))


def reader_section(audit: Audit) -> Section:
    if audit.reader_study is None:
        return Section(11, "Reader study", [Paragraph("No reader study is linked to this audit.")])
    summary = reader_summary(audit)
    if summary is None:
        return Section(11, "Reader study", [Callout("warning", f"Reader study {audit.reader_study.name!r} is not closed yet.")])
    payload = summary["payload"]
    study = payload.get("study") or {}
    blocks: list = [Paragraph(
        f"Study {study.get('name', audit.reader_study.name)!r}: readers saw real and synthetic images in a seeded random "
        "order, blinded (same format, size and metadata for both), and called each real or synthetic with a confidence "
        "rating; repeated showings measure intra-reader agreement. Per-reader proportions carry Wilson 95% CIs; the "
        "reader-averaged AUC is the Obuchowski-Rockette analysis with Hillis degrees of freedom (readers and cases random).")]
    rows = []
    for reader in payload.get("readers", []):
        perf = reader.get("performance") or {}
        accuracy, accuracy_ci = _estimate(perf.get("accuracy"))
        sensitivity, sensitivity_ci = _estimate(perf.get("sensitivity"))
        specificity, specificity_ci = _estimate(perf.get("specificity"))
        intra, _ = _estimate(reader.get("intra_reader_kappa"))
        rows.append([reader["reader"], reader.get("answers"), accuracy, accuracy_ci, sensitivity, sensitivity_ci,
                     specificity, specificity_ci, perf.get("auc"), intra, perf.get("binomial_p_value")])
    blocks.append(Table(["Reader", "answers", "accuracy", "95% CI", "sensitivity", "95% CI", "specificity", "95% CI",
                         "AUC", "intra-reader kappa", "p (accuracy = 50%)"], rows, "Per reader (first showings)"))
    facts = []
    if summary["auc"] is not None:
        facts.append(("Reader-averaged AUC (OR-Hillis, random readers and cases)",
                      f"{summary['auc']:.3f} [{summary['ci_low']:.3f}, {summary['ci_high']:.3f}], df {summary['df']:.1f}"))
    elif summary.get("error"):
        facts.append(("Reader-averaged AUC", f"not computed: {summary['error']}"))
    fleiss, fleiss_ci = _estimate(payload.get("fleiss_kappa"))
    if fleiss is not None:
        facts.append(("Fleiss' kappa across readers", f"{fleiss:.3f} [{fleiss_ci[0]:.3f}, {fleiss_ci[1]:.3f}]"))
    pairwise = payload.get("pairwise_kappa")
    if isinstance(pairwise, list) and pairwise:
        kappas = [(p.get("estimate") or {}).get("kappa") for p in pairwise if isinstance(p, dict)]
        kappas = [k for k in kappas if isinstance(k, (int, float))]
        if kappas:
            facts.append(("Pairwise Cohen's kappa (range over reader pairs)", f"{min(kappas):.3f} to {max(kappas):.3f}"))
    quality = payload.get("quality") or {}
    if quality.get("mean_real") is not None:
        facts.append(("Image quality (Likert), real vs synthetic",
                      f"{quality['mean_real']:.2f} vs {quality['mean_synthetic']:.2f}; difference "
                      f"{quality['mean_difference']:+.2f} [{quality['ci_low']:+.2f}, {quality['ci_high']:+.2f}], "
                      f"Mann-Whitney p {quality['p_value']:.3g}"))
    if facts:
        blocks.append(Facts(facts))
    comparisons = (payload.get("mrmc") or {}).get("arm_comparisons") or []
    rows = [[c.get("arm_a", c.get("modality_a")), c.get("arm_b", c.get("modality_b")), c.get("difference"),
             (c.get("ci_low"), c.get("ci_high")), c.get("p_value")] for c in comparisons if isinstance(c, dict) and "difference" in c]
    if rows:
        blocks.append(Table(["arm A", "arm B", "AUC A − B", "95% CI", "p"], rows, "Generator arms compared (OR-Hillis, shared real cases)"))
    return Section(11, "Reader study", blocks)


def limitations_section(audit: Audit, results: dict, criteria: list[dict]) -> Section:
    items = []
    fidelity = results.get("fidelity") or {}
    fd = (fidelity.get("generated") or {}).get("frechet") or {}
    extractor = fidelity.get("extractor") or {}
    if fd and not fd.get("full_rank", True):
        items.append(f"N ({fd.get('n_reference')} reference, {fd.get('n_generated')} generated) is below the feature "
                     f"dimension ({extractor.get('feature_dim')}): covariances are rank-deficient and FD is biased upwards; "
                     "compare it only with the floor at the same N.")
    if extractor.get("extractor_id") != "inception-v3-fid":
        items.append("Inception-V3 FID weights were not configured (DERMAUDIT_INCEPTION_WEIGHTS): distances use "
                     f"{extractor.get('extractor', 'another network')} and are not comparable with published FIDs.")
    for breakdown in ((fidelity.get("by_phototype") or {}).values()):
        small = [g["group"] for g in breakdown.get("groups", []) if g["underpowered"]]
        if small:
            items.append(f"{breakdown['metric']}: phototype groups {', '.join(ROMAN.get(s, s) for s in small)} are under-powered.")
            break
    photo = results.get("phototype") or {}
    if photo and not photo.get("may_drive_pass_fail"):
        items.append("Phototypes from the pixel estimator are not validated for this acquisition type.")
    if (results.get("memorization") or {}).get("training_is_reference"):
        items.append("No training set was given: memorisation was checked against the reference set.")
    detector = results.get("detector") or {}
    if detector.get("available") and not detector.get("reference_is_held_out"):
        items.append("The detector's real images may include its training images: its AUC is optimistic.")
    items += [f"Criterion {c['name']} not evaluated: {c['reason']}." for c in criteria if c["status"] == "N/A" and c["reason"]]
    return Section(12, "Limitations and deviations", [Paragraph("\n".join(f"• {item}" for item in items) or "None recorded.")])
