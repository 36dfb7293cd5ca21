"""Data for the page tests: image sets of real shared images (read by path, imported into the test's media folder)
and finished audits with a real report.

A real audit takes 5–6 minutes on this machine even with a stand-in feature extractor (the bootstrap and jackknife
work dominates), too slow for page tests. So a finished audit here is made from `audit_results.json`: the stage
results a real audit stored (the real pipeline on 40 isic-uda1 references, 24 PAD-UFES-20 photos posing as generated
and 24 isic baselines, features from a stand-in extractor), with the artefact paths moved to this test's media folder
and the pictures they name drawn from the real images. The report is then issued by the real builder and PDF
renderer (`issue_draft`), exactly as the pipeline's report stage does.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
from django.conf import settings
from django.utils import timezone
from PIL import Image as PILImage

from auditor.models import Audit, AuditResult, DetectorRun, ImageScore, ImageSet, Organisation, Report
from auditor.reporting.criteria import evaluate_criteria
from auditor.reporting.issuing import issue_draft
from tests.auditor.ingest_helpers import ingest_paths

RESULTS_TEMPLATE = Path(__file__).with_name("audit_results.json")


def subset(source: Path, folder: Path, n: int, start: int = 0, step: int = 1) -> Path:
    """A folder with `n` of the source's images and their labels.csv rows."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = (source / "labels.csv").read_text().splitlines()
    rows = [lines[0]]
    for line in lines[1 + start::step][:n]:
        name, rest = line.split(",", 1)
        (folder / Path(name).name).write_bytes((source / name).read_bytes())
        rows.append(f"{Path(name).name},{rest}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


def real_set(organisation: Organisation, name: str, kind: str, source: Path, tmp_path: Path, n: int, *, start: int = 0,
             step: int = 1, **fields) -> ImageSet:
    image_set = ImageSet.objects.create(organisation=organisation, name=name, kind=kind, **fields)
    job = ingest_paths(image_set, [subset(source, tmp_path / f"src-{organisation.pk}-{name}", n, start, step)])
    assert image_set.images.count() == n, (job.message, list(image_set.ingest_errors.values_list("reason", flat=True)))
    return image_set


def audit_sets(organisation: Organisation, isic_dir: Path, pad_dir: Path, tmp_path: Path, n: int = 12) -> dict[str, ImageSet]:
    """A dermoscopy reference, clinical photos posing as a generated set, and another dermoscopy baseline."""
    return {
        "reference": real_set(organisation, "isic-ref", "reference", isic_dir, tmp_path, n, step=5),
        "generated": real_set(organisation, "pad-as-generated", "generated", pad_dir, tmp_path, n, step=7,
                              generator_name="clinical photos posing as a generator", intended_use="tests"),
        "baseline": real_set(organisation, "isic-baseline", "baseline", isic_dir, tmp_path, n, start=2, step=9),
    }


def _montage(left_path: str, right_path: str, target: Path, height: int = 96) -> None:
    """Two images side by side, as the memorisation stage and Grad-CAM overlays draw them."""
    with PILImage.open(left_path) as left, PILImage.open(right_path) as right:
        left = left.convert("RGB").resize((height, height))
        right = right.convert("RGB").resize((height, height))
    canvas = PILImage.new("RGB", (2 * height + 8, height), (255, 255, 255))
    canvas.paste(left, (0, 0))
    canvas.paste(right, (height + 8, 0))
    target.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(target, format="PNG")


def _heat_map(image_path: str, target: Path, size: int = 64) -> None:
    with PILImage.open(image_path) as image:
        picture = np.asarray(image.convert("RGB").resize((size, size)))
    y, x = np.mgrid[0:size, 0:size]
    heat = np.exp(-((x - size / 2) ** 2 + (y - size / 3) ** 2) / (2 * (size / 5) ** 2))
    overlay = (0.5 * picture + 0.5 * np.stack([255 * heat, 80 * heat, 255 * (1 - heat)], axis=-1)).astype(np.uint8)
    target.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(np.concatenate([picture, overlay], axis=1)).resize((4 * 2 * size, 4 * size), PILImage.Resampling.NEAREST).save(target)


def stored_results(audit: Audit, detector: DetectorRun, fd_scale: float = 1.0) -> dict:
    """The template's results for `audit`: artefacts drawn under this audit's media folder, the detector renamed.
    `fd_scale` multiplies the generated set's Fréchet distance (another generator scores differently)."""
    results = json.loads(RESULTS_TEMPLATE.read_text())
    media = str(settings.MEDIA_ROOT)
    generated = [image.path for image in audit.generated_set.images.order_by("id")]
    reference = [image.path for image in audit.reference_set.images.order_by("id")]
    for index, pair in enumerate(results["memorization"]["pairs"]):
        pair["path"] = f"{media}/audits/{audit.pk}/memorization/pair_{index:02d}.png"
        _montage(generated[index % len(generated)], reference[index % len(reference)], Path(pair["path"]))
    for index, overlay in enumerate(results["explanations"]["overlays"]):
        overlay["path"] = f"{media}/audits/{audit.pk}/gradcam/{Path(overlay['path']).name}"
        source = generated if overlay["label"] == "synthetic" else reference
        _heat_map(source[index % len(source)], Path(overlay["path"]))
    results["detector"]["detector_run"] = detector.pk
    frechet = results["fidelity"]["generated"]["frechet"]
    frechet["value"] *= fd_scale
    frechet["ci"] = {key: value * fd_scale if isinstance(value, float) else value for key, value in frechet["ci"].items()}
    return results


def finished_audit(organisation: Organisation, user, sets: dict[str, ImageSet], name: str = "audit", *,
                   results: dict | None = None, fd_scale: float = 1.0, **fields) -> Audit:
    """A succeeded audit with stored stage results and its draft report (PDF + JSON twin), as the pipeline leaves it."""
    detector = DetectorRun.objects.create(organisation=organisation, reference_set=sets["reference"], status="succeeded",
                                          checkpoint_sha256="e" * 64)
    detector.synthetic_sets.set([sets["baseline"]])
    now = timezone.now()
    audit = Audit.objects.create(
        organisation=organisation, name=name, created_by=user, generated_set=sets["generated"],
        reference_set=sets["reference"], baseline_set=sets["baseline"], include_copy_baseline=True, detector=detector,
        criteria={"kid": {"threshold": 10.0}}, status=Audit.Status.SUCCEEDED,
        started_at=now, locked_at=now, finished_at=now, **{"feature_precision": "fp32", **fields})
    stages = copy.deepcopy(results) if results is not None else stored_results(audit, detector, fd_scale)
    for stage, data in stages.items():
        AuditResult.objects.create(audit=audit, stage=stage, data=data)
    report = issue_draft(audit)
    AuditResult.objects.create(audit=audit, stage="report", data={
        "report": str(report.pk), "version": report.version, "pdf_sha256": report.pdf_sha256,
        "criteria": evaluate_criteria(audit)})
    return audit


def score_images(image_set: ImageSet, detector: DetectorRun) -> dict[int, float]:
    """P(synthetic) for every image of the set, spread over [0, 1] in id order."""
    images = list(image_set.images.order_by("id"))
    scores = {image.pk: round((index + 0.5) / len(images), 4) for index, image in enumerate(images)}
    ImageScore.objects.bulk_create([ImageScore(detector=detector, image_id=pk, probability_synthetic=p) for pk, p in scores.items()])
    image_set.detector_scorings.create(detector=detector, status="succeeded", total=len(images), processed=len(images))
    return scores


def illustrated_report(audit: Audit, picture: Path | None = None) -> Report:
    """A further report version whose JSON twin holds one chart and one picture (the authorization matrix needs a
    chart and a picture to ask for without running an audit). `picture` defaults to the media folder's images/test.png."""
    from auditor.reporting import Chart, ImageGrid, ImageRef, ReportDocument, Section

    version = (audit.reports.order_by("-version").values_list("version", flat=True).first() or 0) + 1
    picture = picture or Path(settings.MEDIA_ROOT) / "images" / "test.png"
    document = ReportDocument(
        report_id=f"DA-{audit.pk:05d}", version=version, status="draft", title="matrix", generated_at_utc="2026-01-01T00:00:00Z",
        software_version="test", seeds={"audit": 1}, prepared_by="test",
        sections=[Section(1, "Charts and pictures", [
            Chart("bar", "FD", {"categories": ["generated"], "values": [1.5], "reference": {"value": 1.0, "label": "floor"}}),
            ImageGrid("Pairs", [ImageRef(str(picture), "a pair")], columns=2)])])
    twin = Path(settings.MEDIA_ROOT) / "reports" / f"audit-{audit.pk}" / f"matrix-v{version}.json"
    twin.parent.mkdir(parents=True, exist_ok=True)
    twin.write_text(json.dumps(document.to_dict()))
    return Report.objects.create(audit=audit, version=version, pdf=str(twin), json=str(twin), pdf_sha256="0" * 64)
