"""The detector inside the service: a training run from the command line, its stored evaluation and scores."""
from __future__ import annotations

import pytest
from django.core.management import call_command

from auditor.detection.runs import score_images
from auditor.models import DetectorRun, ImageScore, ImageSet

from tests.auditor.ingest_helpers import ingest_paths

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_train_detector_command_stores_evaluation_and_scores(org, isic_dir, pad_dir, settings, tmp_path, capsys):
    settings.DERMAUDIT_MODEL_DIR = tmp_path / "models"
    real = ImageSet.objects.create(organisation=org, name="isic", kind="reference")
    ingest_paths(real, [isic_dir / "images"])
    # Clinical photos stand in for a "generator" here: a real, if easy, separation task.
    fake = ImageSet.objects.create(organisation=org, name="pad", kind="generated")
    ingest_paths(fake, [pad_dir / "images"])

    call_command("train_detector", "--reference", "isic", "--synthetic", "pad", "--minutes", "0.25", "--seed", "3")

    run = DetectorRun.objects.get()
    assert run.status == "succeeded" and len(run.checkpoint_sha256) == 64
    assert "test roc_auc" in capsys.readouterr().out
    evaluation = run.evaluation
    assert evaluation["overall"]["n"] == evaluation["training"]["n_test"] > 0
    test_hashes = set(evaluation["test_image_sha256"])
    assert test_hashes and test_hashes <= set(real.images.values_list("sha256", flat=True)) | set(fake.images.values_list("sha256", flat=True))
    images = list(fake.images.order_by("id")[:10])
    first = score_images(run, images)
    assert ((first >= 0) & (first <= 1)).all() and ImageScore.objects.filter(detector=run).count() == 10
    again = score_images(run, images)  # stored once, read back
    assert (first == again).all() and ImageScore.objects.filter(detector=run).count() == 10
