"""Reference generators inside the service: train (task), progress, cancel, sample into a baseline set, copy baseline."""
from __future__ import annotations

import pytest
from django.core.management import call_command

from auditor.generation.runs import GeneratorError, make_copy_baseline, sample_to_image_set, train_generator
from auditor.models import GeneratorRun, ImageSet

from tests.auditor.ingest_helpers import ingest_paths

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

TINY = {"image_size": 32, "batch_size": 8, "ngf": 8, "ndf": 8, "z_dim": 16, "progress_every": 1}


@pytest.fixture
def reference(org, pad_dir, tmp_path):
    """40 labelled clinical photos (diagnosis known for all)."""
    folder = tmp_path / "ref"
    (folder / "images").mkdir(parents=True)
    lines = (pad_dir / "labels.csv").read_text().splitlines()
    (folder / "labels.csv").write_text("\n".join(lines[:41]) + "\n")
    for line in lines[1:41]:
        name = line.split(",")[0]
        (folder / name).write_bytes((pad_dir / name).read_bytes())
    image_set = ImageSet.objects.create(organisation=org, name="pad-40", kind="reference")
    ingest_paths(image_set, [folder])
    assert image_set.images.count() == 40
    return image_set


def _run(reference, kind="dcgan", **extra) -> GeneratorRun:
    return GeneratorRun.objects.create(organisation=reference.organisation, kind=kind, reference_set=reference,
                                       max_steps=3, seed=7, config=TINY, **extra)


def test_train_sample_and_reproduce(reference, settings, tmp_path):
    settings.DERMAUDIT_MODEL_DIR = tmp_path / "models"
    run = train_generator(_run(reference))
    assert run.status == "succeeded" and len(run.checkpoint_sha256) == 64
    assert run.progress["step"] == 3 and all(v == v for v in run.progress["losses"].values() if isinstance(v, float))

    first = sample_to_image_set(run, 12, seed=3)
    second = sample_to_image_set(run, 12, seed=3, name="again")
    assert first.kind == "baseline" and first.images.count() == 12
    assert first.generator_weights_sha256 == run.checkpoint_sha256
    assert first.manifest_sha256 == second.manifest_sha256  # same checkpoint + seed = same images
    assert {(i.width, i.height) for i in first.images.all()} == {(32, 32)}


def test_conditional_sampling_respects_class_counts(reference, settings, tmp_path):
    settings.DERMAUDIT_MODEL_DIR = tmp_path / "models"
    run = train_generator(_run(reference, kind="cdcgan", condition_label="diagnosis"))
    classes = sorted(set(reference.images.values_list("diagnosis", flat=True)))
    wanted = {classes[0]: 5, classes[-1]: 3}
    image_set = sample_to_image_set(run, 0, seed=1, class_counts=wanted)
    counts = image_set.label_counts()["diagnosis"]
    assert {k: v for k, v in counts.items()} == wanted
    with pytest.raises(GeneratorError, match="unknown classes"):
        sample_to_image_set(run, 0, seed=1, class_counts={"NOT-A-CLASS": 1})


def test_cancel_stops_a_running_training(reference, settings, tmp_path, monkeypatch):
    settings.DERMAUDIT_MODEL_DIR = tmp_path / "models"
    import auditor.generation.runs as generators

    monkeypatch.setattr(generators, "PROGRESS_INTERVAL_S", 0.0)
    run = _run(reference, cancel_requested=True)
    run.max_steps = 10_000
    run.save()
    run = train_generator(run)
    assert run.status == "cancelled" and run.progress["step"] < 10_000 and run.checkpoint_sha256


def test_copy_baseline_shares_blobs_and_manifest(reference):
    copy = make_copy_baseline(reference)
    assert copy.kind == "baseline" and copy.images.count() == 40
    assert copy.manifest_sha256 == reference.manifest_sha256
    subset = make_copy_baseline(reference, n=10, seed=1)
    assert subset.images.count() == 10


def test_api_train_poll_and_sample(reference, quality_client, settings, tmp_path, django_capture_on_commit_callbacks):
    settings.DERMAUDIT_MODEL_DIR = tmp_path / "models"
    with django_capture_on_commit_callbacks(execute=True):
        created = quality_client.post("/api/generator-runs/", {"kind": "vae", "reference_set": reference.pk, "max_steps": 2,
                                                               "image_size": 32}, format="json")
    assert created.status_code == 201, created.content
    run = quality_client.get(f"/api/generator-runs/{created.json()['id']}/").json()
    assert run["status"] == "succeeded" and run["progress"]["step"] == 2
    sampled = quality_client.post(f"/api/generator-runs/{run['id']}/sample/", {"n": 6, "seed": 2}, format="json")
    assert sampled.status_code == 201 and sampled.json()["image_count"] == 6 and sampled.json()["kind"] == "baseline"
    bad = quality_client.post("/api/generator-runs/", {"kind": "cdcgan", "reference_set": reference.pk, "max_steps": 2}, format="json")
    assert bad.status_code == 400 and "condition_label" in bad.json()
    copy = quality_client.post(f"/api/image-sets/{reference.pk}/copy-baseline/", {"n": 5}, format="json")
    assert copy.status_code == 201 and copy.json()["image_count"] == 5


def test_management_command(reference, settings, tmp_path, capsys):
    settings.DERMAUDIT_MODEL_DIR = tmp_path / "models"
    call_command("train_baseline", "--reference", str(reference.pk), "--kind", "dcgan", "--steps", "2",
                 "--image-size", "32", "--sample", "4")
    out = capsys.readouterr().out
    assert "generator run" in out and "4 images" in out
