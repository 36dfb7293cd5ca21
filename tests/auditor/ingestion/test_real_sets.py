"""Real dermatology sets: duplicates found by content, labels attached, import idempotent."""
from __future__ import annotations

import pytest

from auditor.models import ImageSet

from tests.auditor.ingest_helpers import ingest_paths, stored_blob_files

pytestmark = pytest.mark.django_db


def test_isic_uda1_imports_with_its_two_duplicate_pairs_found_and_labels_attached(org, isic_dir):
    image_set = ImageSet.objects.create(organisation=org, name="isic", kind=ImageSet.Kind.REFERENCE)

    job = ingest_paths(image_set, [isic_dir])

    assert (job.total, job.imported, job.duplicates, job.failed) == (557, 555, 2, 0)
    pairs = {(d.file_name, d.duplicate_of.original_name) for d in image_set.duplicate_records.select_related("duplicate_of")}
    assert pairs == {
        ("images/ISIC_0000280.jpg", "images/ISIC_0000279.jpg"),
        ("images/ISIC_0000512.jpg", "images/ISIC_0000477.jpg"),
    }
    counts = image_set.label_counts()
    assert counts["acquisition"] == {"dermoscopic": 555}
    assert counts["diagnosis"]["melanoma"] + counts["diagnosis"]["nevus"] + counts["diagnosis"].get("unknown", 0) == 555
    first = image_set.images.get(original_name="images/ISIC_0000000.jpg")
    assert (first.diagnosis, first.extra_labels["benign_malignant"], first.width, first.height) == ("nevus", "benign", 512, 384)
    assert len(stored_blob_files()) == 555
    assert len(image_set.manifest_sha256) == 64


def test_pad_ufes_20_fitzpatrick_labels(org, pad_dir):
    image_set = ImageSet.objects.create(organisation=org, name="pad", kind=ImageSet.Kind.REFERENCE)

    job = ingest_paths(image_set, [pad_dir])

    # The README names a byte-identical pair (PAT_701_…), but neither file is in this 412-image subset:
    # no two files here share their pixels, and the importer must not invent duplicates.
    assert (job.imported, job.duplicates, job.failed) == (412, 0, 0)
    fitz = image_set.label_counts()["fitzpatrick"]
    assert fitz == {"1": 21, "2": 147, "3": 79, "4": 17, "5": 3, "unlabelled": 145}
    patient = image_set.images.get(original_name="images/PAT_100_393_595.png")
    assert (patient.fitzpatrick, patient.diagnosis, patient.acquisition) == (1, "NEV", "clinical")
    assert patient.extra_labels["patient_id"] == "PAT_100"


def test_importing_the_same_folder_twice_gives_one_set_of_images(org, pad_dir):
    image_set = ImageSet.objects.create(organisation=org, name="pad", kind=ImageSet.Kind.REFERENCE)
    ingest_paths(image_set, [pad_dir])
    manifest = image_set.manifest_sha256
    errors, duplicates = image_set.ingest_errors.count(), image_set.duplicate_records.count()

    again = ingest_paths(image_set, [pad_dir])

    image_set.refresh_from_db()
    assert (again.imported, again.skipped) == (0, 412)
    assert image_set.images.count() == 412 and image_set.manifest_sha256 == manifest
    assert (image_set.ingest_errors.count(), image_set.duplicate_records.count()) == (errors, duplicates)
    assert len(stored_blob_files()) == 412
