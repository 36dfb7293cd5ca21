"""A realistic audit report document for the renderer tests: all sections of issue 8, passing and failing
criteria, a table long enough to span pages, every chart kind and an image grid of real ISIC images."""
from __future__ import annotations

import math
from pathlib import Path

from auditor.reporting import (
    Callout, Chart, Facts, ImageGrid, ImageRef, Paragraph, ReportDocument, Section, Table,
)

SECTION_TITLES = [
    "Executive summary",
    "Intended use and scope",
    "Identification and traceability",
    "Data description",
    "Methods",
    "Fidelity and diversity",
    "Phototype balance",
    "Memorization",
    "Synthetic-image detector",
    "Reader study",
    "Limitations and deviations",
    "Sign-off",
]

# (criterion, value, CI, threshold text, status). Values are deliberately "awkward" floats so that the printed
# text is a real rounding of the stored number.
CRITERIA = [
    ("FD upper 95% CI", 162.48731, (151.20417, 171.90236), "≤ 180.0", "PASS"),
    ("KID", 0.0213347, (0.0181002, 0.0249968), "≤ 0.020", "FAIL"),
    ("Precision (k = 5)", 0.71264, (0.68031, 0.74455), "≥ 0.60", "PASS"),
    ("Recall (k = 5)", 0.41876, (0.38754, 0.45102), "≥ 0.50", "FAIL"),
    ("Memorization rate", 0.0040, (0.0011, 0.0102), "≤ 0.010", "PASS"),
    ("Phototype distance (TV)", 0.3127, (0.2846, 0.3399), "≤ 0.250", "FAIL"),
    ("Detector AUC", 0.99871, (0.99602, 1.0), "≤ 0.900", "FAIL"),
    ("Reader AUC", float("nan"), (None, None), "≤ 0.700", "NOT EVALUATED"),
]
FAILING = [name for name, *_rest, status in CRITERIA if status == "FAIL"]
LONG_TABLE_ROWS = 90
LONG_TABLE_HEADER = ["Pair rank", "Generated image", "Closest training image", "Feature distance"]


def build_sample_document(isic_dir: Path, *, status: str = "draft", version: int = 1) -> ReportDocument:
    labels = (isic_dir / "labels.csv").read_text().splitlines()[1:5]
    images = [isic_dir / line.split(",")[0] for line in labels]
    approval = {}
    if status == "approved":
        approval = {"approved_by": "q.lead@clinic-a.example", "approved_at_utc": "2025-05-02T14:05:00Z"}
    criteria_rows = [[name, value, ci, threshold, verdict] for name, value, ci, threshold, verdict in CRITERIA]
    fpr = [i / 20 for i in range(21)]
    sections = [
        Section(1, SECTION_TITLES[0], [
            Callout("fail", f"{len(FAILING)} of {len(CRITERIA) - 1} evaluated acceptance criteria are not met."),
            Table(["Criterion", "Value", "95% CI", "Threshold", "Status"], criteria_rows,
                  "Acceptance criteria, pre-specified before the run", status_column=4),
        ]),
        Section(2, SECTION_TITLES[1], [Paragraph(
            "Generated dermoscopic images of nevi and melanomas intended to augment training data for a lesion "
            "classifier. Not for diagnostic use. Scope: 64 × 64 px RGB, phototypes I–VI.")]),
        Section(3, SECTION_TITLES[2], [Facts([
            ("Generated set manifest", "3f1c9a0d2b7e4c5f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f"),
            ("Reference set manifest", "a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1"),
            ("Generator", "DCGAN baseline 0.1.0 (weights 9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a49)"),
            ("Operator", "quality-a"),
        ])]),
        Section(4, SECTION_TITLES[3], [Table(
            ["Set", "Diagnosis", "Phototype", "Acquisition", "Images"],
            [["reference", "nevus", "II", "dermoscopic", 301], ["reference", "melanoma", "II", "dermoscopic", 256],
             ["generated", "unlabelled", "unknown", "synthetic", 1000]],
            "Image counts by diagnosis, phototype and acquisition")]),
        Section(5, SECTION_TITLES[4], [Paragraph(
            "Fréchet distance on EfficientNet-Lite0 features (float64 eigenvalue square root), KID with subset "
            "size 100, precision/recall with k = 5; percentile bootstrap with 1000 resamples; Cohen's κ "
            "for reader agreement."),
            Table(["Metric", "Definition", "Feature extractor / preprocessing", "N"], [
                ["Fréchet distance", "Distance between Gaussians fitted to the two feature sets; the matrix square "
                 "root is taken in float64 via eigenvalues, and the bias in N is controlled by comparing at equal N "
                 "with the real-vs-real floor.", "EfficientNet-Lite0, bilinear antialiased resize to 224 px", 557],
                ["Precision / recall", "Share of generated samples inside the k-nearest-neighbour manifold of the "
                 "reference set, and vice versa (Kynkäänniemi et al. 2019).", "same features", 557],
                ["Weights digest", "9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a49ffeeddccbbaa99887766554433221100ab", "n/a", None],
            ], "Metric definitions"),
        ]),
        Section(6, SECTION_TITLES[5], [
            Table(["Comparison", "N", "FD", "FD 95% CI", "KID"],
                  [["generated vs reference", 557, 162.48731, (151.20417, 171.90236), 0.0213347],
                   ["real-vs-real floor", 278, 53.91236, (49.0071, 58.66623), 0.0004519],
                   ["baseline GAN vs reference", 557, 261.0249, (250.3318, 272.76549), -0.0000321]],
                  "Fidelity beside the real-vs-real floor and the baseline GAN", digits=[0, 0, 1, 1, 4]),
            Chart("grouped_bar", "Fréchet distance with 95% CI", {
                "categories": ["FD", "FD at N = 278"],
                "series": [
                    {"name": "generated", "values": [162.5, 170.2], "lower": [151.2, 158.0], "upper": [171.9, 181.3]},
                    {"name": "real-vs-real floor", "values": [53.9, 53.9], "lower": [49.0, 49.0], "upper": [58.7, 58.7]},
                    {"name": "baseline GAN", "values": [261.0, 270.4], "lower": [250.3, 259.9], "upper": [272.8, 281.0]},
                ]},
                  y_label="Fréchet distance"),
            Chart("line", "Precision and recall against k", {
                "series": [{"name": "precision", "x": [1, 3, 5, 7, 10], "y": [0.52, 0.65, 0.71, 0.75, 0.79],
                            "lower": [0.49, 0.62, 0.68, 0.72, 0.76], "upper": [0.55, 0.68, 0.74, 0.78, 0.82]},
                           {"name": "recall", "x": [1, 3, 5, 7, 10], "y": [0.21, 0.33, 0.42, 0.48, 0.55]}]},
                  x_label="k (nearest neighbours)", y_label="value"),
        ]),
        Section(7, SECTION_TITLES[6], [
            Chart("distribution_vs_target", "Phototype distribution against the target", {
                "categories": ["I", "II", "III", "IV", "V", "VI", "unknown"],
                "observed": [0.05, 0.52, 0.28, 0.08, 0.01, 0.0, 0.06],
                "target": [0.10, 0.20, 0.20, 0.20, 0.15, 0.15, 0.0]}, x_label="Fitzpatrick phototype",
                y_label="share of images"),
            Chart("bar", "Detector AUC per phototype", {
                "categories": ["I", "II", "III", "IV", "V"], "values": [0.97, 0.99, 0.998, 1.0, None],
                "lower": [0.91, 0.98, 0.99, 0.99, None], "upper": [1.0, 1.0, 1.0, 1.0, None],
                "reference": {"value": 0.9, "label": "acceptance threshold"}}, y_label="AUC"),
            Callout("warning", "Phototypes V and VI have fewer than 30 images: their results are under-powered."),
        ]),
        Section(8, SECTION_TITLES[7], [
            Table(LONG_TABLE_HEADER,
                  [[rank, f"generated/{rank * 7 % 1000:04d}.png", f"ISIC_{rank * 13 % 557:07d}",
                    0.10 + rank * 0.0031 + rank ** 2 * 1e-6]
                   for rank in range(1, LONG_TABLE_ROWS + 1)],
                  "Closest generated/training pairs by feature distance", digits=4),
            ImageGrid("Closest generated/training pairs, side by side",
                      [ImageRef(str(path), f"{'generated' if i % 2 == 0 else 'training'}: {path.name}")
                       for i, path in enumerate(images)], columns=2),
        ]),
        Section(9, SECTION_TITLES[8], [
            Chart("roc", "ROC curve of the synthetic-image detector (test split)", {
                "curves": [{"name": "ViT-Tiny", "fpr": fpr, "tpr": [min(1.0, math.sqrt(x) * 1.05) for x in fpr],
                            "auc": 0.99871},
                           {"name": "JPEG q75", "fpr": fpr, "tpr": [x ** 0.5 for x in fpr], "auc": 0.6667}]},
                  x_label="false-positive rate", y_label="true-positive rate"),
            ImageGrid("Grad-CAM montage (ROAD faithfulness 0.27)",
                      [ImageRef(str(path), path.stem) for path in images[:3]], columns=3),
        ]),
        Section(10, SECTION_TITLES[9], [Callout("info", "No reader study was linked to this audit.")]),
        Section(11, SECTION_TITLES[10], [Paragraph("Inception weights were not available; FD uses EfficientNet-Lite0 "
                                                   "features and is not comparable with published FID values.")]),
        Section(12, SECTION_TITLES[11], [Facts([("Prepared by", "quality-a"),
                                                ("Approved by", approval.get("approved_by", "pending"))])]),
    ]
    return ReportDocument(
        report_id="RPT-2025-0042", version=version, status=status,
        title="Synthetic dermoscopy batch audit: DCGAN baseline vs ISIC UDA-1",
        generated_at_utc="2025-05-01T09:30:00Z", software_version="4f2a9c1e7b3d",
        seeds={"bootstrap": 20250501, "detector": 7, "sampling": 123}, prepared_by="quality-a",
        sections=sections, **approval,
    )
