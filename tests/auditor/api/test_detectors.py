"""The detector as a service feature (issue #6): train through the API and the web pages (Celery task, progress,
cancel), score any image set (per-image rows stored once, set-level summary with AUC), roles and organisations.

Real images throughout: 48 ISIC dermoscopy images as the real class against a tiny DCGAN's samples (trained here for
two steps on the same images, as in tests/auditor/audits/test_pipeline.py), a 64-px ViT trained for one epoch. One detector is
trained in this process (its evaluation alone takes ~15 s here); the web test checks the form without training.
"""
from __future__ import annotations

import time

import pytest
from django.test import Client

from auditor.detection.tasks import train_detector_task
from auditor.generation.runs import make_copy_baseline, sample_to_image_set, train_generator
from auditor.models import DetectorRun, DetectorScoring, GeneratorRun, ImageScore, ImageSet, Organisation, Role
from metrics.torch_threads import intra_op_threads

from tests.support.workers import wait_for, worker_pool
from tests.auditor.conftest import api_client_for, make_user
from tests.auditor.ingest_helpers import ingest_paths
from tests.auditor.audits.test_pipeline import _subset

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

N_REAL, N_SYNTHETIC, N_HELD_OUT_SAMPLE = 48, 48, 60
TINY_BUDGET = {"minutes": 0.5, "max_epochs": 1, "seed": 3}


@pytest.fixture
def one_thread():
    # On this shared 2-core machine one intra-op thread trained ~3x faster than two (threads wait on each other).
    with intra_op_threads(1):
        yield


@pytest.fixture
def detector_sets(org, isic_dir, tmp_path, settings):
    """Real ISIC images, a DCGAN sample to train against, and a second sample the detector never sees."""
    settings.DERMAUDIT_MODEL_DIR = tmp_path / "models"
    real = ImageSet.objects.create(organisation=org, name="isic-48", kind="reference")
    ingest_paths(real, [_subset(isic_dir, tmp_path, "real", N_REAL, step=7)])
    generator = GeneratorRun.objects.create(organisation=org, kind="dcgan", reference_set=real, max_steps=2, seed=1,
                                            config={"image_size": 32, "batch_size": 16, "ngf": 8, "ndf": 8, "z_dim": 16})
    generator = train_generator(generator)
    synthetic = sample_to_image_set(generator, N_SYNTHETIC, seed=2, name="dcgan-train")
    unseen = sample_to_image_set(generator, N_HELD_OUT_SAMPLE, seed=5, name="dcgan-unseen")
    assert (real.images.count(), synthetic.images.count(), unseen.images.count()) == (N_REAL, N_SYNTHETIC, N_HELD_OUT_SAMPLE)
    return real, synthetic, unseen


@pytest.fixture
def photo_sets(org, isic_dir, pad_dir, tmp_path):
    """Enough images to pass the checks (no generator to train): dermoscopy as real, clinical photos as "synthetic"."""
    real = ImageSet.objects.create(organisation=org, name="isic-24", kind="reference")
    ingest_paths(real, [_subset(isic_dir, tmp_path, "real", 24, step=13)])
    synthetic = ImageSet.objects.create(organisation=org, name="pad-24", kind="generated")
    ingest_paths(synthetic, [_subset(pad_dir, tmp_path, "pad", 24, step=9)])
    assert (real.images.count(), synthetic.images.count()) == (24, 24)
    return real, synthetic


def _train_through_api(client, real, synthetic, capture) -> dict:
    with capture(execute=True):
        created = client.post("/api/detector-runs/", {"reference_set": real.pk, "synthetic_sets": [synthetic.pk], **TINY_BUDGET},
                              format="json")
    assert created.status_code == 201, created.content
    assert created.json()["status"] == "queued"  # the task runs when the request's transaction commits
    return client.get(f"/api/detector-runs/{created.json()['id']}/").json()


def test_train_poll_score_and_rescore_through_the_api(detector_sets, quality_client, quality_user, client, one_thread,
                                                      django_capture_on_commit_callbacks):
    real, synthetic, unseen = detector_sets
    started = time.monotonic()
    run = _train_through_api(quality_client, real, synthetic, django_capture_on_commit_callbacks)
    train_seconds = time.monotonic() - started
    assert run["status"] == "succeeded", run["message"]
    assert len(run["checkpoint_sha256"]) == 64 and run["max_seconds"] == 30 and run["config"] == {"train": {"max_epochs": 1}}
    assert run["progress"]["fraction_done"] == 1.0 and run["progress"]["epoch"] == 1 and run["progress"]["steps"] > 0
    overall = run["evaluation"]["overall"]
    for name in ("roc_auc", "average_precision", "ece_before_scaling", "ece_after_scaling"):
        assert overall[name]["ci_low"] <= overall[name]["value"] <= overall[name]["ci_high"], name
    assert overall["n_real"] >= 5 and overall["n_synthetic"] >= 5 and run["evaluation"]["groups"]
    listed = quality_client.get("/api/detector-runs/").json()
    assert [r["id"] for r in listed["results"]] == [run["id"]] and "evaluation" not in listed["results"][0]

    # Score a labelled synthetic set the detector never saw: per-image rows and a summary with AUC.
    url = f"/api/detector-runs/{run['id']}/score/"
    with django_capture_on_commit_callbacks(execute=True):
        queued = quality_client.post(url, {"image_set": unseen.pk}, format="json")
    assert queued.status_code == 202, queued.content
    scorings = quality_client.get(url).json()["results"]
    assert len(scorings) == 1 and scorings[0]["status"] == "succeeded", scorings
    scoring = scorings[0]
    summary = scoring["summary"]
    detector = DetectorRun.objects.get(pk=run["id"])
    rows = ImageScore.objects.filter(detector=detector, image__image_set=unseen)
    probabilities = sorted(rows.values_list("probability_synthetic", flat=True))
    assert len(probabilities) == summary["n"] == scoring["processed"] == scoring["total"] == N_HELD_OUT_SAMPLE
    assert summary["mean_probability_synthetic"] == pytest.approx(sum(probabilities) / len(probabilities))
    assert summary["share_above_0_5"] == pytest.approx(sum(p >= 0.5 for p in probabilities) / len(probabilities))
    assert summary["set_class"] == "synthetic" and summary["detector_sha256"] == run["checkpoint_sha256"]
    assert scoring["message"].startswith(f"{N_HELD_OUT_SAMPLE} images scored ({N_HELD_OUT_SAMPLE} through the model")
    auc = summary["auc"]
    assert auc["available"] and auc["n_this_set"] == N_HELD_OUT_SAMPLE and auc["n_excluded_seen_in_training"] == 0
    assert auc["n_compared"] == overall["n_real"]  # the real images of the detector's own test split
    assert 0.0 <= auc["ci_low"] <= auc["value"] <= auc["ci_high"] <= 1.0

    # Per-image scores: paginated (50 a page), the same numbers as the stored rows.
    first = quality_client.get(f"/api/detector-runs/{run['id']}/scores/", {"image_set": unseen.pk}).json()
    assert first["count"] == N_HELD_OUT_SAMPLE and len(first["results"]) == 50 and first["next"]
    second = quality_client.get(first["next"]).json()
    served = {r["image"]: r["probability_synthetic"] for r in first["results"] + second["results"]}
    assert served == dict(rows.values_list("image_id", "probability_synthetic"))
    assert {r["image_set"] for r in first["results"]} == {unseen.pk} and all(len(r["sha256"]) == 64 for r in first["results"])

    # Re-scoring replaces nothing: same row ids, same numbers, same summary.
    before = dict(rows.values_list("id", "probability_synthetic"))
    with django_capture_on_commit_callbacks(execute=True):
        assert quality_client.post(url, {"image_set": unseen.pk}, format="json").status_code == 202
    again = DetectorScoring.objects.get(detector=detector, image_set=unseen)
    assert dict(rows.values_list("id", "probability_synthetic")) == before
    assert again.summary == summary and "0 through the model" in again.message

    # The same files in another set are not run through the model again (scores are reused by content).
    copy = make_copy_baseline(unseen, n=10, seed=0)
    with django_capture_on_commit_callbacks(execute=True):
        quality_client.post(url, {"image_set": copy.pk}, format="json")
    copied = DetectorScoring.objects.get(detector=detector, image_set=copy)
    assert copied.status == "succeeded" and "0 through the model" in copied.message and copied.summary["n"] == 10

    # The detector's own reference set: only its held-out test images count towards the AUC.
    with django_capture_on_commit_callbacks(execute=True):
        quality_client.post(url, {"image_set": real.pk}, format="json")
    own = DetectorScoring.objects.get(detector=detector, image_set=real).summary
    assert own["set_class"] == "real" and own["n"] == N_REAL
    assert own["auc"]["n_this_set"] == overall["n_real"] and own["auc"]["n_excluded_seen_in_training"] == N_REAL - overall["n_real"]
    assert own["auc"]["n_compared"] == overall["n_synthetic"]
    assert own["auc"]["value"] == pytest.approx(overall["roc_auc"]["value"])  # the test split, scored the same way
    assert len(quality_client.get(url).json()["results"]) == 3

    # The same run on the web pages: evaluation with CIs, the score form, a scored set's per-image page.
    client.force_login(quality_user)
    detail = client.get(f"/detectors/{run['id']}/").content.decode()
    assert 'id="evaluation"' in detail and "ECE after temperature scaling" in detail and 'id="phototype-metrics"' in detail
    assert f"{overall['roc_auc']['value']:.3f}" in detail and f"[{overall['roc_auc']['ci_low']:.3f}, {overall['roc_auc']['ci_high']:.3f}]" in detail
    assert 'id="score-form"' in detail and 'data-active=""' in detail and "dcgan-unseen" in detail
    assert f"{summary['mean_probability_synthetic']:.3f}" in detail
    small = make_copy_baseline(synthetic, n=4, seed=1)
    with django_capture_on_commit_callbacks(execute=True):
        scored = client.post(f"/detectors/{run['id']}/score/", {"image_set": small.pk})
    assert scored.status_code == 302 and scored.url == f"/detectors/{run['id']}/"
    web_scoring = DetectorScoring.objects.get(detector=detector, image_set=small)
    assert web_scoring.status == "succeeded" and web_scoring.summary["set_class"] == "synthetic"
    assert not web_scoring.summary["auc"]["available"] and "did not train on" in web_scoring.summary["auc"]["reason"]
    page = client.get(f"/detectors/{run['id']}/scorings/{scoring['id']}/").content.decode()
    highest = rows.order_by("-probability_synthetic", "image_id").first()
    assert highest.image.original_name in page and f"{highest.probability_synthetic:.4f}" in page
    assert "page 1 of 2" in page and page.count("<tr>") == 1 + 50  # header + a page of 50 images
    print(f"\ntraining through the API: {train_seconds:.1f} s wall ({run['message']}); unseen-sample AUC "
          f"{auc['value']:.3f} [{auc['ci_low']:.3f}, {auc['ci_high']:.3f}], mean P(synthetic) {summary['mean_probability_synthetic']:.3f}")


def test_bad_requests_get_clear_reasons(photo_sets, quality_client, org, other_org, django_capture_on_commit_callbacks):
    real, synthetic = photo_sets
    empty = ImageSet.objects.create(organisation=org, name="empty", kind="generated")
    foreign = ImageSet.objects.create(organisation=other_org, name="theirs", kind="generated")

    def create(**payload):
        with django_capture_on_commit_callbacks(execute=True):
            return quality_client.post("/api/detector-runs/", {"minutes": 0.1, **payload}, format="json")

    too_few = create(reference_set=real.pk, synthetic_sets=[empty.pk])
    assert too_few.status_code == 400 and "'empty'" in too_few.json()["synthetic_sets"][0] and "0 images" in too_few.json()["synthetic_sets"][0]
    same = create(reference_set=real.pk, synthetic_sets=[real.pk])
    assert same.status_code == 400 and "cannot also be a synthetic set" in same.json()["synthetic_sets"][0]
    hidden = create(reference_set=real.pk, synthetic_sets=[foreign.pk])
    assert hidden.status_code == 400 and "does not exist" in hidden.json()["synthetic_sets"][0]
    no_budget = quality_client.post("/api/detector-runs/", {"reference_set": real.pk, "synthetic_sets": [synthetic.pk]}, format="json")
    assert no_budget.status_code == 400 and "minutes" in no_budget.json()
    assert DetectorRun.objects.count() == 0

    untrained = DetectorRun.objects.create(organisation=org, reference_set=real, max_seconds=5)
    refused = quality_client.post(f"/api/detector-runs/{untrained.pk}/score/", {"image_set": synthetic.pk}, format="json")
    assert refused.status_code == 400 and "no trained model" in refused.json()["detail"]
    DetectorRun.objects.filter(pk=untrained.pk).update(status="succeeded", checkpoint_sha256="0" * 64)
    refused = quality_client.post(f"/api/detector-runs/{untrained.pk}/score/", {"image_set": empty.pk}, format="json")
    assert refused.status_code == 400 and "'empty' has no images" in refused.json()["detail"]
    refused = quality_client.post(f"/api/detector-runs/{untrained.pk}/score/", {"image_set": foreign.pk}, format="json")
    assert refused.status_code == 400 and "does not exist" in refused.json()["image_set"][0]

    # A run the task cannot train (sets emptied after it was queued) fails with the reason, not a traceback.
    starved = DetectorRun.objects.create(organisation=org, reference_set=empty, max_seconds=5)
    starved.synthetic_sets.set([synthetic])
    train_detector_task.delay(starved.pk)
    starved.refresh_from_db()
    assert starved.status == "failed" and "at least 20 real and 20 synthetic images; got 0 and 24" in starved.message


def test_cancel_before_start_and_after_finish(org, image_set, quality_client, django_capture_on_commit_callbacks):
    run = DetectorRun.objects.create(organisation=org, reference_set=image_set, max_seconds=60)
    cancelled = quality_client.post(f"/api/detector-runs/{run.pk}/cancel/")
    assert cancelled.status_code == 202 and cancelled.json()["cancel_requested"] is True
    train_detector_task.delay(run.pk)  # the worker picks the queued run up: it stops before training anything
    run.refresh_from_db()
    assert (run.status, run.message, run.checkpoint_sha256) == ("cancelled", "cancelled before training started", "")
    again = quality_client.post(f"/api/detector-runs/{run.pk}/cancel/")
    assert again.status_code == 409 and "already finished (cancelled)" in again.json()["detail"]


def test_roles_and_organisations(org, other_org, users, image_set):
    run = DetectorRun.objects.create(organisation=org, reference_set=image_set, max_seconds=60)
    theirs_set = ImageSet.objects.create(organisation=other_org, name="theirs", kind="reference")
    theirs = DetectorRun.objects.create(organisation=other_org, reference_set=theirs_set, max_seconds=60)
    developer, reader = api_client_for(users[Role.DEVELOPER]), api_client_for(users[Role.READER])
    quality = api_client_for(users[Role.QUALITY])
    create = {"reference_set": image_set.pk, "synthetic_sets": [image_set.pk], "minutes": 1}
    for path in ("", f"{run.pk}/", f"{run.pk}/score/", f"{run.pk}/scores/"):
        assert developer.get(f"/api/detector-runs/{path}").status_code == 200, path
        assert reader.get(f"/api/detector-runs/{path}").status_code == 403, path
    assert developer.post("/api/detector-runs/", create, format="json").status_code == 403
    assert developer.post(f"/api/detector-runs/{run.pk}/cancel/").status_code == 403
    assert developer.post(f"/api/detector-runs/{run.pk}/score/", {"image_set": image_set.pk}, format="json").status_code == 403
    for path in (f"{theirs.pk}/", f"{theirs.pk}/score/", f"{theirs.pk}/scores/"):
        assert quality.get(f"/api/detector-runs/{path}").status_code == 404, path
    assert quality.post(f"/api/detector-runs/{theirs.pk}/cancel/").status_code == 404
    assert [r["id"] for r in quality.get("/api/detector-runs/").json()["results"]] == [run.pk]
    outsider = make_user("outsider", Organisation.objects.create(name="Clinic C"), Role.QUALITY)
    assert api_client_for(outsider).get("/api/detector-runs/").json()["results"] == []

    pages = ["/detectors/", f"/detectors/{run.pk}/"]
    for role in (Role.QUALITY, Role.DEVELOPER, Role.READER):
        user = users[role]
        client = Client()
        client.force_login(user)
        for page in pages:
            response = client.get(page)
            assert response.status_code == (403 if role == Role.READER else 200), (role, page)
            if role == Role.DEVELOPER:
                assert b'id="detector-train-form"' not in response.content and b'id="cancel-training"' not in response.content
        if role != Role.READER:
            assert client.get(f"/detectors/{theirs.pk}/").status_code == 404
            nav = client.get("/sets/").content.decode()
            assert 'href="/detectors/"' in nav
    client = Client()
    client.force_login(users[Role.DEVELOPER])
    assert client.post(f"/detectors/{run.pk}/cancel/").status_code == 403
    assert not DetectorRun.objects.get(pk=run.pk).cancel_requested


def test_web_form_queues_a_run_that_can_be_cancelled(photo_sets, client, quality_user, django_capture_on_commit_callbacks):
    real, synthetic = photo_sets
    client.force_login(quality_user)
    page = client.get("/detectors/").content.decode()
    assert 'id="detector-train-form"' in page and "isic-24" in page and "pad-24" in page

    refused = client.post("/detectors/", {"reference_set": real.pk, "synthetic_sets": [real.pk], "minutes": 1, "seed": 0})
    assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()  # a reference set is not synthetic
    empty = ImageSet.objects.create(organisation=real.organisation, name="empty", kind="generated")
    refused = client.post("/detectors/", {"reference_set": real.pk, "synthetic_sets": [empty.pk], "minutes": 1, "seed": 0})
    assert refused.status_code == 200 and "hold 0 images together" in refused.content.decode()
    with django_capture_on_commit_callbacks(execute=False) as queued:  # leave it queued: the page of a waiting run
        response = client.post("/detectors/", {"reference_set": real.pk, "synthetic_sets": [synthetic.pk], "minutes": 2,
                                               "max_epochs": 3, "seed": 4})
    assert response.status_code == 302, response.content.decode()[-3000:]
    run = DetectorRun.objects.get()
    assert response.url == f"/detectors/{run.pk}/" and len(queued) == 1
    assert (run.status, run.max_seconds, run.seed, run.config, run.created_by) == ("queued", 120, 4, {"train": {"max_epochs": 3}}, quality_user)
    assert list(run.synthetic_sets.all()) == [synthetic]
    detail = client.get(response.url).content.decode()
    assert 'id="cancel-training"' in detail and 'data-active="1"' in detail and "at most 3 epochs" in detail
    assert 'id="score-form"' not in detail  # nothing to score with yet
    assert client.get("/detectors/").content.decode().count(f'href="/detectors/{run.pk}/"') == 1

    cancelled = client.post(f"/detectors/{run.pk}/cancel/")
    assert cancelled.status_code == 302
    queued[0]()  # the queued task runs now, finds the cancellation and trains nothing
    run.refresh_from_db()
    assert run.status == "cancelled" and run.message == "cancelled before training started"
    scored = client.post(f"/detectors/{run.pk}/score/", {"image_set": synthetic.pk}, follow=True)
    assert "no trained model (status cancelled)" in scored.content.decode()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_trains_reports_progress_and_stops_when_cancelled(photo_sets, quality_client, settings, tmp_path, monkeypatch):
    real, synthetic = photo_sets
    settings.DERMAUDIT_MODEL_DIR = tmp_path / "models"
    with worker_pool(tmp_path, settings.MEDIA_ROOT, env={"OMP_NUM_THREADS": "1"}) as pool:
        pool.start("det1")
        # This process runs Celery eagerly; the API's enqueue goes to the real worker's queue instead.
        monkeypatch.setattr(train_detector_task, "delay", lambda run_id: pool.send("auditor.train_detector", run_id))
        created = quality_client.post("/api/detector-runs/", {"reference_set": real.pk, "synthetic_sets": [synthetic.pk],
                                                              "minutes": 10, "max_epochs": 500, "seed": 1}, format="json")
        assert created.status_code == 201, created.content
        url = f"/api/detector-runs/{created.json()['id']}/"
        try:
            running = wait_for(lambda: (r := quality_client.get(url).json())["progress"].get("epoch", 0) >= 1 and r, 180,
                               message="the first epoch's progress")
        except TimeoutError:
            pytest.fail("no progress:\n" + pool.log("det1")[-3000:])
        assert running["status"] == "running" and 0 < running["progress"]["fraction_done"] < 1
        asked = time.monotonic()
        assert quality_client.post(f"{url}cancel/").status_code == 202
        stopped = wait_for(lambda: (r := quality_client.get(url).json())["status"] != "running" and r, 120, message="the cancellation")
        stop_seconds = time.monotonic() - asked
    assert stopped["status"] == "cancelled" and stopped["checkpoint_sha256"] == "", stopped
    assert stopped["progress"]["epoch"] < 500 and stopped["message"] == "cancelled before a usable model existed"
    assert "auditor.train_detector" in pool.log("det1")
    print(f"\nworker: cancelled at epoch {stopped['progress']['epoch']}, {stop_seconds:.1f} s after the request")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_train_detector_command_runs_on_a_worker_and_prints_progress(photo_sets, settings, tmp_path, monkeypatch, capsys):
    """With a broker, `manage.py train_detector` queues the Celery task and waits, printing the worker's progress."""
    from django.core.management import call_command

    real, synthetic = photo_sets
    settings.DERMAUDIT_MODEL_DIR = tmp_path / "models"
    settings.CELERY_TASK_ALWAYS_EAGER = False
    with worker_pool(tmp_path, settings.MEDIA_ROOT, env={"OMP_NUM_THREADS": "1"}) as pool:
        pool.start("cmd1")
        monkeypatch.setattr(train_detector_task, "delay", lambda run_id: pool.send("auditor.train_detector", run_id))
        call_command("train_detector", "--reference", real.name, "--synthetic", synthetic.name, "--minutes", "0.3",
                     "--seed", "2")
        log = pool.log("cmd1")
    out = capsys.readouterr().out
    run = DetectorRun.objects.get()
    assert run.status == "succeeded" and len(run.checkpoint_sha256) == 64, run.message
    assert "auditor.train_detector" in log  # trained by the worker process, not by the command
    assert "[running] epoch=" in out and "test roc_auc" in out, out


@pytest.mark.django_db(transaction=True)
def test_interrupting_the_waiting_command_asks_the_run_to_cancel(photo_sets, settings, monkeypatch):
    from django.core.management import CommandError, call_command

    import auditor.management.training_commands as training_commands

    real, synthetic = photo_sets
    settings.CELERY_TASK_ALWAYS_EAGER = False
    queued = []
    monkeypatch.setattr(train_detector_task, "delay", queued.append)  # a broker nobody consumes yet

    def interrupted(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(training_commands.time, "sleep", interrupted)
    with pytest.raises(CommandError, match="cancellation of DetectorRun .* requested"):
        call_command("train_detector", "--reference", real.name, "--synthetic", synthetic.name, "--minutes", "1")
    run = DetectorRun.objects.get()
    assert queued == [run.pk] and run.status == "queued" and run.cancel_requested
    train_detector_task.run(run.pk)  # the worker that picks it up later trains nothing
    run.refresh_from_db()
    assert run.status == "cancelled"
