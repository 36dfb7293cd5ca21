"""An audit is refused, with the reason, when its inputs are not ready: sets still importing, empty, the same set
twice; a set whose manifest was never recorded gets it before the run, so the report can always trace it."""
from __future__ import annotations

import pytest

from auditor.models import Audit, AuditChunk, ImageSet, IngestJob

from tests.auditor.conftest import image_bytes
from tests.auditor.ingest_helpers import ingest_paths

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_sets(org, quality_user, tmp_path):
    sets = []
    for index, (name, kind) in enumerate([("generated", "generated"), ("reference", "reference")]):
        folder = tmp_path / name
        folder.mkdir()
        for i in range(3):
            (folder / f"{name}_{i}.png").write_bytes(image_bytes(seed=10 * index + i))
        image_set = ImageSet.objects.create(organisation=org, name=name, kind=kind, created_by=quality_user)
        ingest_paths(image_set, [folder])
        sets.append(image_set)
    return sets


def _draft(org, quality_user, generated, reference, **fields) -> Audit:
    return Audit.objects.create(organisation=org, name="a", created_by=quality_user, generated_set=generated,
                                reference_set=reference, **fields)


def test_a_set_with_an_unfinished_import_is_refused_with_the_reason(two_sets, org, quality_user, quality_client):
    generated, reference = two_sets
    IngestJob.objects.create(image_set=generated, source="batch-2.zip", status=IngestJob.Status.RUNNING)
    audit = _draft(org, quality_user, generated, reference)

    response = quality_client.post(f"/api/audits/{audit.pk}/run/")

    assert response.status_code == 400
    assert "the generated set 'generated' has an import that has not finished" in response.json()["detail"]
    audit.refresh_from_db()
    assert audit.status == Audit.Status.DRAFT and audit.locked_at is None  # still editable, nothing queued
    assert not AuditChunk.objects.filter(audit=audit).exists()


def test_a_missing_manifest_is_recorded_before_the_run(two_sets, org, quality_user):
    from auditor.audits import pipeline

    generated, reference = two_sets
    expected = reference.manifest_sha256
    assert len(expected) == 64
    ImageSet.objects.filter(pk=reference.pk).update(manifest_sha256="")  # as after an import that died mid-way
    audit = _draft(org, quality_user, generated, reference)

    pipeline.start_audit(audit, enqueue=lambda audit_id: None)  # validated and queued; not run here

    reference.refresh_from_db()
    assert reference.manifest_sha256 == expected
    assert Audit.objects.get(pk=audit.pk).status == Audit.Status.QUEUED


@pytest.mark.parametrize("case, message", [
    ("same", "the generated and reference sets must differ"),
    ("empty", "the reference set 'empty' has no images"),
])
def test_unusable_inputs_are_refused(two_sets, org, quality_user, quality_client, case, message):
    generated, reference = two_sets
    if case == "same":
        reference = generated
    else:
        reference = ImageSet.objects.create(organisation=org, name="empty", kind="reference", created_by=quality_user)
    audit = _draft(org, quality_user, generated, reference)

    response = quality_client.post(f"/api/audits/{audit.pk}/run/")

    assert response.status_code == 400 and message in response.json()["detail"]


def test_bf16_features_are_refused_with_the_reason_where_the_cpu_would_emulate_them(two_sets, org, quality_user,
                                                                                     quality_client, monkeypatch):
    import metrics.extractors

    monkeypatch.setattr(metrics.extractors, "has_native_bf16", lambda: False)
    generated, reference = two_sets
    audit = _draft(org, quality_user, generated, reference)
    Audit.objects.filter(pk=audit.pk).update(feature_precision="bf16")

    response = quality_client.post(f"/api/audits/{audit.pk}/run/")

    assert response.status_code == 400
    assert ("feature precision bf16 (the audit's choice) is not available here: this CPU has no native BF16"
            in response.json()["detail"])
    audit.refresh_from_db()
    assert audit.status == Audit.Status.DRAFT and not AuditChunk.objects.filter(audit=audit).exists()


@pytest.mark.skipif(not __import__("metrics.extractors").extractors.has_native_bf16(), reason="CPU without native BF16")
def test_a_bf16_audit_reads_bf16_features_and_records_their_precision(two_sets, org, quality_user, settings, tmp_path):
    from auditor.audits.images import set_features

    settings.DERMAUDIT_FEATURE_CACHE = tmp_path / "features"
    generated, _ = two_sets
    fp32 = _draft(org, quality_user, generated, two_sets[1], feature_precision="fp32")
    bf16 = _draft(org, quality_user, generated, two_sets[1], feature_precision="bf16")

    _, full = set_features(fp32, generated)
    _, half = set_features(bf16, generated)

    assert (full.precision, half.precision) == ("fp32", "bf16")
    assert half.numerics.startswith("bf16") and full.numerics.startswith("fp32")
    assert half.provenance()["precision"] == "bf16"
    assert not (half.features == full.features).all()  # really computed in bf16, not a cache hit of the fp32 rows
    assert abs(half.features - full.features).max() < 0.05 * abs(full.features).max()


@pytest.mark.parametrize("native_bf16, setting, chosen, recorded", [
    (True, "auto", "", "bf16"),  # the default where the CPU has native BF16
    (False, "auto", "", "fp32"),  # ... and where it does not
    (True, "fp32", "", "fp32"),  # a deployment that pins fp32 so its audits re-run on any CPU
    (True, "auto", "fp32", "fp32"),  # the audit's own choice wins over the deployment's
    (False, "fp32", "", "fp32"),
])
def test_the_feature_precision_is_resolved_and_recorded_when_the_audit_starts(
        two_sets, org, quality_user, quality_client, settings, monkeypatch, native_bf16, setting, chosen, recorded):
    import metrics.extractors

    monkeypatch.setattr(metrics.extractors, "has_native_bf16", lambda: native_bf16)
    settings.DERMAUDIT_FEATURE_PRECISION = setting
    created = quality_client.post("/api/audits/", {
        "name": "precision", "generated_set": two_sets[0].pk, "reference_set": two_sets[1].pk,
        **({"feature_precision": chosen} if chosen else {})}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["feature_precision"] == chosen  # a draft shows what was chosen: blank is the default

    from auditor.audits import pipeline

    pipeline.start_audit(Audit.objects.get(pk=created.json()["id"]), enqueue=lambda audit_id: None)  # not run here

    audit = Audit.objects.get(pk=created.json()["id"])
    assert audit.feature_precision == recorded
    assert quality_client.get(f"/api/audits/{audit.pk}/").json()["feature_precision"] == recorded
    assert pipeline.clone_for_rerun(audit, quality_user).feature_precision == recorded  # a re-run computes the same


def test_a_deployment_set_to_bf16_on_a_cpu_without_it_refuses_to_start_with_the_reason(
        two_sets, org, quality_user, quality_client, settings, monkeypatch):
    import metrics.extractors

    monkeypatch.setattr(metrics.extractors, "has_native_bf16", lambda: False)
    settings.DERMAUDIT_FEATURE_PRECISION = "bf16"
    audit = _draft(org, quality_user, *two_sets)

    response = quality_client.post(f"/api/audits/{audit.pk}/run/")

    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "feature precision bf16 (the deployment's DERMAUDIT_FEATURE_PRECISION=bf16) is not available here" in detail
    assert "Choose fp32" in detail
    assert Audit.objects.get(pk=audit.pk).feature_precision == ""  # nothing recorded: still a draft


def test_a_worker_without_native_bf16_fails_a_bf16_audit_with_the_reason(two_sets, org, quality_user, monkeypatch):
    """A web machine with BF16 resolved the precision; the worker that takes a chunk has none."""
    import metrics.extractors
    from auditor.audits import pipeline
    from auditor.audits.tasks import audit_chunk_task

    audit = pipeline.start_audit(_draft(org, quality_user, *two_sets, feature_precision="fp32"),
                                 enqueue=lambda audit_id: None)
    Audit.objects.filter(pk=audit.pk).update(feature_precision="bf16")  # as recorded on the BF16 web machine
    monkeypatch.setattr(metrics.extractors, "has_native_bf16", lambda: False)
    chunk = AuditChunk.objects.filter(audit=audit).first()

    with pytest.raises(metrics.extractors.ExtractorUnavailable):
        audit_chunk_task.apply(args=(audit.pk, chunk.pk), throw=True)

    audit.refresh_from_db()
    assert audit.status == Audit.Status.FAILED
    assert "effnet-lite0-imagenet (bf16) is unavailable: this CPU has no native BF16" in audit.error
