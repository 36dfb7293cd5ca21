"""The utility stage and its criterion on real images: held-out real images with their true labels pass, the same
images with swapped labels fail, a set without labels is N/A and says what to upload."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from auditor.audits.utility import label_of, subgroup_labels, utility_stage
from auditor.models import Audit, ImageSet
from auditor.reporting.criteria import evaluate_criteria
from auditor.reporting.utility_section import utility_section
from tests.auditor.ingest_helpers import ingest_paths

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


REFERENCE_ROWS, HELD_OUT_ROWS = (0, 1, 2), (3, 4)  # row number modulo 5: interleaved, since archive order drifts


def isic_folder(isic_dir: Path, tmp_path: Path, name: str, rows: tuple[int, ...], swap: bool = False) -> Path:
    """A folder of isic-uda1 images (rows whose number modulo 5 is in `rows`) with their labels.csv; `swap`
    exchanges melanoma and nevus."""
    with open(isic_dir / "labels.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames
        chosen = [row for i, row in enumerate(reader) if i % 5 in rows and row["diagnosis"] != "unknown"]
    folder = tmp_path / name
    (folder / "images").mkdir(parents=True)
    with open(folder / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in chosen:
            if swap:
                row = {**row, "diagnosis": {"melanoma": "nevus", "nevus": "melanoma"}[row["diagnosis"]]}
            (folder / row["file"]).write_bytes((isic_dir / row["file"]).read_bytes())
            writer.writerow(row)
    return folder


@pytest.fixture
def reference(org, isic_dir, tmp_path, settings):
    settings.DERMAUDIT_FEATURE_CACHE = tmp_path / "features"
    settings.DERMAUDIT_UTILITY_REPEATS = 3
    image_set = ImageSet.objects.create(organisation=org, name="isic three fifths", kind="reference")
    ingest_paths(image_set, [isic_folder(isic_dir, tmp_path, "reference", REFERENCE_ROWS)])
    return image_set


def audit_of(org, reference, generated, **criteria) -> Audit:
    return Audit.objects.create(organisation=org, name="utility", generated_set=generated, reference_set=reference,
                                criteria={"utility_gain": criteria} if criteria else {})


def criterion(audit: Audit, data: dict) -> dict:
    return next(row for row in evaluate_criteria(audit, {"utility": data}) if row["name"] == "utility_gain")


def test_held_out_real_images_with_true_labels_pass_with_both_controls_met(org, reference, isic_dir, tmp_path):
    generated = ImageSet.objects.create(organisation=org, name="isic rest, true labels", kind="generated")
    ingest_paths(generated, [isic_folder(isic_dir, tmp_path, "held-out", HELD_OUT_ROWS)])
    audit = audit_of(org, reference, generated)
    data = utility_stage(audit)
    assert "error" not in data, data.get("error")
    result = data["result"]
    assert result["classes"] == ["melanoma", "nevus"] and result["high_risk_classes"] == ["melanoma"]
    assert result["n_synthetic"] == generated.images.count()
    assert data["audited"]["ratio"] == 1.0 and data["audited"]["gain"] > 0
    row = criterion(audit, data)
    assert row["status"] == "PASS", (row["value_text"], row["reason"], row["controls"])
    assert [c["ok"] for c in row["controls"]] == [True, True]
    # isic-uda1 records sex and age: both become subgroups of the real test images.
    assert {s["field"] for s in result["subgroups"]} >= {"sex", "age band"}
    section = utility_section(audit, {"utility": data})
    assert section.number == 10 and any(getattr(block, "kind", "") == "line" for block in section.blocks)


def test_the_same_images_with_swapped_labels_fail(org, reference, isic_dir, tmp_path):
    generated = ImageSet.objects.create(organisation=org, name="isic rest, labels swapped", kind="generated")
    ingest_paths(generated, [isic_folder(isic_dir, tmp_path, "swapped", HELD_OUT_ROWS, swap=True)])
    audit = audit_of(org, reference, generated)
    data = utility_stage(audit)
    row = criterion(audit, data)
    assert row["status"] == "FAIL", (row["value_text"], row["reason"])
    assert data["audited"]["ci"]["high"] < -0.02
    consistency = {r["class"]: r["synthetic_share"] for r in data["result"]["label_consistency"]["per_class"]}
    assert consistency["melanoma"] < 0.5 and consistency["nevus"] < 0.5  # the real classifier disagrees with them


def test_a_set_without_labels_is_not_evaluated_and_the_reason_says_what_to_upload(org, reference, pad_dir, tmp_path):
    generated = ImageSet.objects.create(organisation=org, name="pad without labels", kind="generated")
    folder = tmp_path / "unlabelled"
    folder.mkdir()
    for path in sorted((pad_dir / "images").glob("*.png"))[:30]:
        (folder / path.name).write_bytes(path.read_bytes())
    ingest_paths(generated, [folder])
    audit = audit_of(org, reference, generated)
    row = criterion(audit, utility_stage(audit))
    assert row["status"] == "N/A"
    assert "carries no class labels" in row["reason"] and "labels.csv with a 'diagnosis' column" in row["reason"]


def test_another_label_column_and_a_set_of_other_classes(org, reference, pad_dir, tmp_path):
    """PAD-UFES-20's diagnoses (BCC, NEV, ...) are not isic-uda1's: no usable image under 'diagnosis'; under
    'benign_malignant' both sets share their classes."""
    generated = ImageSet.objects.create(organisation=org, name="pad", kind="generated")
    folder = tmp_path / "pad"
    (folder / "images").mkdir(parents=True)
    lines = (pad_dir / "labels.csv").read_text().splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, line.split(","))) for line in lines[1:]][:150]
    with open(folder / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*header, "benign_malignant"])
        writer.writeheader()
        for row in rows:
            malignant = row["diagnosis"] in {"BCC", "SCC", "MEL"}
            writer.writerow({**row, "benign_malignant": "malignant" if malignant else "benign"})
            (folder / row["file"]).write_bytes((pad_dir / row["file"]).read_bytes())
    ingest_paths(generated, [folder])
    by_diagnosis = criterion(audit := audit_of(org, reference, generated), utility_stage(audit))
    assert by_diagnosis["status"] == "N/A" and "no labelled image of class" in by_diagnosis["reason"]
    data = utility_stage(audit_of(org, reference, generated, label="benign_malignant", ratio=0.5))
    assert data["result"]["classes"] == ["benign", "malignant"] and data["result"]["high_risk_classes"] == ["malignant"]
    assert data["audited"]["ratio"] == 0.5


def test_labels_and_subgroups_are_read_from_the_image_rows(org, reference):
    images = list(reference.images.order_by("sha256")[:50])
    assert {label_of(image, "diagnosis") for image in images} <= {"melanoma", "nevus"}
    assert {label_of(image, "benign_malignant") for image in images} <= {"benign", "malignant"}
    fields, source = subgroup_labels(images)
    assert source == "estimates" and "phototype (pixel estimate, not validated)" not in fields  # none estimated yet
    assert set(fields["sex"]) <= {"female", "male", None}


def test_the_api_takes_the_criterions_options_and_refuses_bad_ones_with_the_reason(org, quality_user, quality_client,
                                                                                   reference):
    generated = ImageSet.objects.create(organisation=org, name="empty generated", kind="generated")
    base = {"name": "u", "generated_set": generated.pk, "reference_set": reference.pk}
    good = {"utility_gain": {"label": "benign_malignant", "ratio": "own", "class_mix": "balanced",
                             "high_risk": ["malignant"], "classifier": "fine_tuned", "threshold": -0.03}}
    response = quality_client.post("/api/audits/", {**base, "criteria": good}, format="json")
    assert response.status_code == 201, response.json()
    effective = Audit.objects.get(pk=response.json()["id"]).effective_criteria()["utility_gain"]
    assert (effective["ratio"], effective["class_mix"], effective["threshold"]) == ("own", "balanced", -0.03)
    for option, value, problem in (("class_mix", "mostly", "class_mix must be one of"),
                                   ("ratio", 9, "ratio must be 'own' or a number"),
                                   ("classifier", "svm", "classifier must be linear_probe or fine_tuned"),
                                   ("colour", "red", "and its options")):
        response = quality_client.post("/api/audits/", {**base, "criteria": {"utility_gain": {option: value}}},
                                       format="json")
        assert response.status_code == 400 and problem in str(response.json()), (option, response.json())
    response = quality_client.post("/api/audits/", {**base, "criteria": {"kid": {"label": "diagnosis"}}}, format="json")
    assert response.status_code == 400  # options belong to the criterion that has them


def test_the_api_results_carry_the_utility_numbers(org, quality_user, quality_client, reference, isic_dir, tmp_path):
    from auditor.models import AuditResult

    generated = ImageSet.objects.create(organisation=org, name="isic rest", kind="generated")
    ingest_paths(generated, [isic_folder(isic_dir, tmp_path, "rest", HELD_OUT_ROWS)])
    audit = audit_of(org, reference, generated)
    AuditResult.objects.create(audit=audit, stage="utility", data=utility_stage(audit))
    Audit.objects.filter(pk=audit.pk).update(status=Audit.Status.SUCCEEDED)
    response = quality_client.get(f"/api/audits/{audit.pk}/results/")
    assert response.status_code == 200
    utility = response.json()["stages"]["utility"]
    assert utility["audited"]["gain"] == pytest.approx(utility["result"]["decision"]["gain"])
    assert {c["key"] for c in utility["result"]["conditions"]} >= {"real_only", "synthetic_only", "augmented@1",
                                                                    "real_added@1", "swapped@1"}
