"""Faults injected into real components: a database connection that drops mid-import, a full or failing media
volume during uploads and imports, and report generation or approval failing half-way.

Each fault is real at the layer below the code under test: the PostgreSQL backend is terminated
(pg_terminate_backend) or SQLite's driver connection is closed underneath Django; writes under a media folder put
their first bytes on disk and then fail with ENOSPC/EIO, as a short write on a full volume does. After each fault
the invariants are checked on the database and the disk, never on the code's own account of what it did.
"""
from __future__ import annotations

import builtins
import errno
import hashlib
import json
import logging
import os
from pathlib import Path

import psycopg
import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.db import OperationalError, connection, connections
from django.test import Client
from pypdf import PdfReader
from reportlab.platypus.doctemplate import LayoutError

from auditor.audits import stages
from auditor.ingestion import importer
from auditor.ingestion import tasks as ingestion_tasks
from auditor.reporting import issuing
from auditor.models import Audit, DuplicateRecord, Image, ImageSet, IngestError, IngestJob, Report, Role, Signature
from auditor.reporting import pdf as pdf_module
from auditor.ingestion.tasks import ingest_task

from tests.auditor.conftest import api_client_for, image_bytes, zip_bytes
from tests.auditor.ingest_helpers import ingest_paths, stored_blob_files
from tests.auditor.audits.test_pipeline import _subset

N_IMAGES = 150  # three chunks of 64: the fault lands in the second


# --- faults -----------------------------------------------------------------------------------------------------

def drop_database_connection() -> None:
    """End the Django connection's session for real. PostgreSQL: terminate its backend from a second connection
    and wait until it is gone. SQLite (no server): close the driver's connection underneath Django."""
    if connection.vendor == "postgresql":
        pid = connection.connection.info.backend_pid
        cfg = connection.settings_dict
        with psycopg.connect(dbname=cfg["NAME"], user=cfg["USER"] or None, password=cfg["PASSWORD"] or None,
                             host=cfg["HOST"] or None, port=cfg["PORT"] or None, autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchone()[0]
    else:
        connection.connection.close()


class FailingVolume:
    """Writes to files under `root` (through open() or os.fdopen()) behave as on a volume with `free_bytes` left:
    the write that does not fit puts what fits on disk and raises OSError(`error`). The first `healthy_files`
    files opened for writing are not limited (to fail a later file of a sequence)."""

    def __init__(self, monkeypatch, root: Path, free_bytes: int, error: int = errno.ENOSPC, healthy_files: int = 0):
        self.root, self.free, self.error, self.healthy_files = Path(root).resolve(), free_bytes, error, healthy_files
        self.opened: list[str] = []
        self.failed: list[str] = []
        real_open, real_fdopen = builtins.open, os.fdopen

        def patched_open(file, mode="r", *args, **kwargs):
            return self._wrap(real_open(file, mode, *args, **kwargs), file, mode)

        def patched_fdopen(fd, mode="r", *args, **kwargs):
            handle = real_fdopen(fd, mode, *args, **kwargs)
            return self._wrap(handle, os.readlink(f"/proc/self/fd/{fd}"), mode)

        monkeypatch.setattr(builtins, "open", patched_open)
        monkeypatch.setattr(os, "fdopen", patched_fdopen)

    def repair(self) -> None:
        self.free = 10**15

    def _wrap(self, handle, path, mode: str):
        if isinstance(path, int) or not any(flag in mode for flag in "wax+"):
            return handle
        if not Path(os.fsdecode(path)).resolve().is_relative_to(self.root):
            return handle
        self.opened.append(os.fsdecode(path))
        if len(self.opened) <= self.healthy_files:
            return handle
        return _VolumeFile(handle, self, os.fsdecode(path))


class _VolumeFile:
    def __init__(self, handle, volume: FailingVolume, path: str):
        self._handle, self._volume, self._path = handle, volume, path

    def write(self, data) -> int:
        room = max(0, self._volume.free)
        if len(data) > room:
            self._handle.write(data[:room])
            self._handle.flush()
            self._volume.free = 0
            self._volume.failed.append(self._path)
            raise OSError(self._volume.error, os.strerror(self._volume.error))
        self._volume.free -= len(data)
        return self._handle.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> bool:
        self._handle.close()
        return False

    def __getattr__(self, name):
        return getattr(self._handle, name)


# --- invariants ---------------------------------------------------------------------------------------------------

def sha256_of(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def assert_no_half_registered_images(image_set: ImageSet) -> None:
    """Every row has its complete blob, no blob is referenced twice in the set, the manifest matches the rows."""
    image_set.refresh_from_db()
    rows = list(image_set.images.values_list("file", "sha256", "pixel_sha256"))
    for file, sha256, _ in rows:
        assert sha256_of(default_storage.path(file)) == sha256, file
    assert len({file for file, _, _ in rows}) == len(rows), "a blob is referenced twice"
    assert len({pixel for _, _, pixel in rows}) == len(rows), "a picture is registered twice"
    assert image_set.manifest_sha256 == image_set.compute_manifest_sha256(), "the manifest does not match the rows"
    assert not [p for p in Path(default_storage.location).rglob(".tmp-*")], "a temporary file was left behind"


def assert_job_agrees_with_rows(job: IngestJob) -> None:
    """For a set that only this job filled: its counters are those of the committed rows."""
    job.refresh_from_db()
    assert job.image_set.images.count() == job.imported + job.skipped
    assert IngestError.objects.filter(job=job).count() == job.failed
    assert DuplicateRecord.objects.filter(job=job).count() == job.duplicates
    assert job.imported + job.duplicates + job.failed + job.skipped <= job.processed <= job.total


def assert_reports_consistent(audit: Audit) -> list[Report]:
    """No Report row without its PDF and JSON twin; the stored SHA-256 is the PDF's; versions have no gaps."""
    reports = list(audit.reports.order_by("version"))
    assert [r.version for r in reports] == list(range(1, len(reports) + 1))
    for report in reports:
        assert sha256_of(report.pdf_path) == report.pdf_sha256, f"v{report.version}: PDF does not match its SHA-256"
        assert json.loads(report.json_path.read_text())["pdf_sha256"] == report.pdf_sha256
    folder = Path(issuing.report_folder(audit))
    assert not list(folder.glob(".tmp-*")) and not list(folder.glob("*.partial")), "a half-written file was left behind"
    return reports


# --- 1. database connection dropped mid-ingest ----------------------------------------------------------------------

@pytest.fixture
def big_zip(tmp_path) -> Path:
    path = tmp_path / "batch.zip"
    path.write_bytes(zip_bytes({f"img_{i:03d}.png": image_bytes(size=(24, 24), seed=i) for i in range(N_IMAGES)}))
    return path


def retries(caplog) -> list[str]:
    """The database steps the importer retried on a fresh connection, in order."""
    return [record.args[0] for record in caplog.records if record.getMessage().startswith("database connection lost")]


@pytest.fixture
def quick_reconnect(monkeypatch):
    monkeypatch.setattr(importer, "RECONNECT_WAITS_S", (0.05, 0.05, 0.05))


@pytest.fixture
def fresh_connection_afterwards(transactional_db):
    """Whatever a test leaves of its dropped connection, the next test (and the table flush) starts afresh."""
    yield
    connection.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("where", ["inside the chunk transaction", "between chunks", "after the commit, before its ack"])
def test_dropped_connection_is_retried_and_the_batch_completes(where, image_set, big_zip, monkeypatch, quick_reconnect,
                                                               fresh_connection_afterwards, caplog):
    caplog.set_level(logging.WARNING, logger="auditor.ingestion.importer")
    drops = {"n": 0}
    real_bulk_create = Image.objects.bulk_create
    real_commit = connections["default"].commit
    commits = {"n": 0}

    def drop_after_rows_inserted(objs, *args, **kwargs):
        created = real_bulk_create(objs, *args, **kwargs)
        if drops["n"] == 0 and image_set.images.count() > importer.CHUNK_SIZE:  # chunk 2 in, not committed
            drops["n"] += 1
            drop_database_connection()
        return created

    def drop_after_first_chunk(job: IngestJob) -> None:
        if drops["n"] == 0:
            drops["n"] += 1
            drop_database_connection()

    def commit_then_drop():
        # The second chunk's commit reaches the database, the connection dies before the client hears of it.
        real_commit()
        commits["n"] += 1
        if commits["n"] == 2:
            drops["n"] += 1
            drop_database_connection()
            raise OperationalError("server closed the connection unexpectedly")

    if where == "inside the chunk transaction":
        monkeypatch.setattr(Image.objects, "bulk_create", drop_after_rows_inserted)
        job = ingest_paths(image_set, [big_zip])
    elif where == "between chunks":
        job = ingest_paths(image_set, [big_zip], after_chunk=drop_after_first_chunk)
    else:
        monkeypatch.setattr(connections["default"], "commit", commit_then_drop)
        job = ingest_paths(image_set, [big_zip])

    assert drops["n"] == 1
    assert retries(caplog) == ["committing files up to 128 of 150"]  # the second chunk, once, on a new connection
    job.refresh_from_db()
    assert job.status == IngestJob.Status.SUCCEEDED, job.message
    assert (job.imported, job.processed, job.total) == (N_IMAGES, N_IMAGES, N_IMAGES)
    assert image_set.images.count() == N_IMAGES
    assert len(stored_blob_files()) == N_IMAGES
    assert_no_half_registered_images(image_set)
    assert_job_agrees_with_rows(job)


@pytest.mark.django_db(transaction=True)
def test_database_gone_for_good_marks_the_job_failed_then_a_retry_completes(image_set, big_zip, monkeypatch, quick_reconnect,
                                                                            fresh_connection_afterwards, caplog):
    """The connection drops at every commit after the first chunk, and once more as the failure is recorded: the
    retries give up, the job is marked failed (on a fresh connection) with the committed chunk whole; re-running
    the task once the database is back completes the batch without storing anything twice."""
    caplog.set_level(logging.WARNING, logger="auditor.ingestion.importer")
    real_make_durable, real_mark_failed = importer.make_durable, ingestion_tasks.mark_failed
    attempts = {"n": 0}

    def database_down(paths):
        if image_set.images.count() >= importer.CHUNK_SIZE:  # chunk 1 committed: from now on every commit fails
            attempts["n"] += 1
            drop_database_connection()
        return real_make_durable(paths)

    def drop_then_mark_failed(job, message):
        drop_database_connection()
        real_mark_failed(job, message)

    monkeypatch.setattr(importer, "make_durable", database_down)
    monkeypatch.setattr(ingestion_tasks, "mark_failed", drop_then_mark_failed)
    job = IngestJob.objects.create(image_set=image_set, source="batch.zip", source_paths=[str(big_zip)])
    with pytest.raises(Exception) as raised:
        ingest_task(str(job.pk))
    assert attempts["n"] == 1 + len(importer.RECONNECT_WAITS_S)  # the first try and each retry
    assert retries(caplog) == ["committing files up to 128 of 150"] * 3 + ["recording the failed import"]

    job.refresh_from_db()
    assert job.status == IngestJob.Status.FAILED
    assert type(raised.value).__name__ in job.message and "re-running the import adds only what is missing" in job.message
    assert image_set.images.count() == importer.CHUNK_SIZE  # the first chunk, whole; nothing of the second
    assert (job.imported, job.processed) == (importer.CHUNK_SIZE, importer.CHUNK_SIZE)
    assert_no_half_registered_images(image_set)
    assert_job_agrees_with_rows(job)
    assert image_set.manifest_sha256  # recomputed over the committed chunk when the failure was recorded
    assert len(stored_blob_files()) == 2 * importer.CHUNK_SIZE  # chunk 2's blobs wait, unreferenced, for the retry

    monkeypatch.setattr(importer, "make_durable", real_make_durable)
    monkeypatch.setattr(ingestion_tasks, "mark_failed", real_mark_failed)
    ingest_task(str(job.pk))
    job.refresh_from_db()
    assert job.status == IngestJob.Status.SUCCEEDED
    assert (job.imported, job.skipped) == (N_IMAGES - importer.CHUNK_SIZE, importer.CHUNK_SIZE)
    assert image_set.images.count() == N_IMAGES
    assert len(stored_blob_files()) == N_IMAGES
    assert_no_half_registered_images(image_set)


# --- 2. full or failing media volume during uploads -----------------------------------------------------------------

@pytest.fixture
def stored_before(image_set, quality_client, django_capture_on_commit_callbacks) -> dict[int, str]:
    """Images uploaded before the fault: id -> SHA-256 of the bytes they were stored with."""
    files = {f"before_{i}.png": image_bytes(seed=100 + i) for i in range(3)}
    with django_capture_on_commit_callbacks(execute=True):
        response = quality_client.post(f"/api/image-sets/{image_set.pk}/upload/",
                                       {"files": [SimpleUploadedFile(n, d) for n, d in files.items()]}, format="multipart")
    assert response.status_code == 202
    assert image_set.images.count() == 3
    return dict(image_set.images.values_list("id", "sha256"))


def assert_stored_images_intact(client, stored: dict[int, str]) -> None:
    for image_id, sha256 in stored.items():
        response = client.get(f"/api/images/{image_id}/file/")
        assert response.status_code == 200
        assert hashlib.sha256(b"".join(response.streaming_content)).hexdigest() == sha256


def staged_files(media_root: Path) -> list[Path]:
    return [p for p in (media_root / "staging").rglob("*") if p.is_file()] if (media_root / "staging").exists() else []


@pytest.mark.django_db
@pytest.mark.parametrize("interface, error, reason", [
    ("api", errno.ENOSPC, "No space left on device (ENOSPC)"),
    ("web", errno.EIO, "Input/output error (EIO)"),
])
def test_media_write_error_while_staging_an_upload(interface, error, reason, image_set, quality_user, quality_client,
                                                   stored_before, settings, monkeypatch):
    files = {"a.png": image_bytes(seed=1), "b.png": image_bytes(seed=2), "c.png": image_bytes(seed=3)}
    volume = FailingVolume(monkeypatch, settings.MEDIA_ROOT, free_bytes=len(files["a.png"]) + len(files["b.png"]) // 2,
                           error=error)
    jobs_before = IngestJob.objects.count()
    payload = {"files": [SimpleUploadedFile(name, data) for name, data in files.items()]}
    if interface == "api":
        response = quality_client.post(f"/api/image-sets/{image_set.pk}/upload/", payload, format="multipart")
    else:
        web = Client()
        web.force_login(quality_user)
        response = web.post(f"/sets/{image_set.pk}/upload/", payload)

    assert [Path(p).name for p in volume.failed] == ["b.png"]  # the fault fired half-way through the second file
    assert response.status_code == 507
    assert response["Content-Type"] == "application/json"
    detail = response.json()["detail"]
    assert detail.startswith("could not store the upload: b.png: ") and reason in detail and "nothing from this upload" in detail
    assert IngestJob.objects.count() == jobs_before
    assert staged_files(settings.MEDIA_ROOT) == []  # a.png, complete, and b.png, partial, both removed
    assert image_set.images.count() == 3
    assert_stored_images_intact(quality_client, stored_before)
    assert_no_half_registered_images(image_set)


@pytest.mark.django_db
def test_disk_full_while_receiving_a_large_upload(image_set, quality_client, stored_before, settings, tmp_path, monkeypatch):
    """Uploads over FILE_UPLOAD_MAX_MEMORY_SIZE are spooled to temporary files while the request is parsed."""
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "spool")
    (tmp_path / "spool").mkdir()
    real_receive = TemporaryFileUploadHandler.receive_data_chunk

    def full_after_a_few_bytes(self, raw_data, start):
        if self.file_name == "large.png":
            self.file.write(raw_data[:100])
            self.file.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_receive(self, raw_data, start)

    monkeypatch.setattr(TemporaryFileUploadHandler, "receive_data_chunk", full_after_a_few_bytes)
    jobs_before = IngestJob.objects.count()
    payload = {"files": [SimpleUploadedFile("small.png", image_bytes(seed=5)),
                         SimpleUploadedFile("large.png", image_bytes(size=(64, 64), seed=6))]}
    response = quality_client.post(f"/api/image-sets/{image_set.pk}/upload/", payload, format="multipart")

    assert response.status_code == 507
    detail = response.json()["detail"]
    assert detail.startswith("could not receive the upload: large.png: No space left on device (ENOSPC)")
    assert list((tmp_path / "spool").iterdir()) == []  # the partial spool file and the complete one both removed
    assert IngestJob.objects.count() == jobs_before and staged_files(settings.MEDIA_ROOT) == []
    assert image_set.images.count() == 3
    assert_stored_images_intact(quality_client, stored_before)


@pytest.mark.django_db
def test_disk_full_while_storing_images_during_an_import(image_set, quality_client, stored_before, settings, monkeypatch,
                                                         django_capture_on_commit_callbacks):
    """Staging succeeds; the volume fills while the import task writes blobs: the job fails naming the file and
    the reason, no row points at a missing or partial blob, and once space is freed a re-run completes."""
    entries = {f"img_{i:02d}.png": image_bytes(size=(40, 40), seed=200 + i) for i in range(10)}
    blobs_before = len(stored_blob_files())
    volume = FailingVolume(monkeypatch, settings.MEDIA_ROOT / "images",
                           free_bytes=sum(len(entries[f"img_{i:02d}.png"]) for i in range(4)) + 300)
    with django_capture_on_commit_callbacks(execute=True):
        response = quality_client.post(f"/api/image-sets/{image_set.pk}/upload/",
                                       {"files": [SimpleUploadedFile("batch.zip", zip_bytes(entries))]}, format="multipart")
    assert response.status_code == 202

    job = quality_client.get(f"/api/ingest-jobs/{response.json()['id']}/").json()
    assert job["status"] == "failed"
    assert "could not store batch.zip:img_04.png: No space left on device (ENOSPC)" in job["message"]
    assert len(volume.failed) == 1
    assert image_set.images.count() == 3  # nothing of the failed chunk is registered
    assert_stored_images_intact(quality_client, stored_before)
    assert_no_half_registered_images(image_set)  # the partial img_04 blob is gone with its temporary file
    assert len(stored_blob_files()) == blobs_before + 4  # complete blobs of img_00..03 wait for the retry
    assert staged_files(settings.MEDIA_ROOT), "the staged upload is kept for the retry"

    volume.repair()
    ingest_task(job["id"])
    job = quality_client.get(f"/api/ingest-jobs/{job['id']}/").json()
    assert (job["status"], job["imported"]) == ("succeeded", 10)
    assert image_set.images.count() == 13
    assert len(stored_blob_files()) == blobs_before + 10  # the four waiting blobs were reused, not written twice
    assert_no_half_registered_images(image_set)
    assert_stored_images_intact(quality_client, stored_before)
    assert staged_files(settings.MEDIA_ROOT) == []


# --- 3. report generation and approval failing ----------------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.slow
def test_report_stage_fails_on_a_corrupt_picture_keeps_earlier_results_and_a_retry_issues_it(
        org, quality_user, quality_client, isic_dir, pad_dir, tmp_path, settings, monkeypatch,
        django_capture_on_commit_callbacks):
    settings.DERMAUDIT_MODEL_DIR = tmp_path / "models"
    settings.DERMAUDIT_FEATURE_CACHE = tmp_path / "features"
    reference = ImageSet.objects.create(organisation=org, name="isic-40", kind="reference")
    ingest_paths(reference, [_subset(isic_dir, tmp_path, "ref", 40, step=10)])
    generated = ImageSet.objects.create(organisation=org, name="pad-40", kind="generated")
    ingest_paths(generated, [_subset(pad_dir, tmp_path, "gen", 40, step=10)])

    # The fault: after the memorisation stage wrote its picture pairs, the first one is damaged in media storage.
    real_memorization = stages.STAGE_FUNCTIONS["memorization"]
    damaged: dict[str, bytes] = {}

    def memorization_then_damage(audit):
        result = real_memorization(audit)
        name = result["pairs"][0]["path"]  # a storage name, relative to MEDIA_ROOT
        path = default_storage.path(name)
        damaged[name] = Path(path).read_bytes()
        Path(path).write_bytes(damaged[name][: len(damaged[name]) // 3])  # truncated, as by a failing disk
        return result

    monkeypatch.setitem(stages.STAGE_FUNCTIONS, "memorization", memorization_then_damage)
    audit = Audit.objects.create(organisation=org, name="faulty report", created_by=quality_user,
                                 generated_set=generated, reference_set=reference)
    with django_capture_on_commit_callbacks(execute=True):
        response = quality_client.post(f"/api/audits/{audit.pk}/run/")
    assert response.status_code == 202

    (broken_path,) = damaged
    detail = quality_client.get(f"/api/audits/{audit.pk}/").json()
    assert detail["status"] == "failed"
    progress = detail["progress"]
    assert (progress["status"], progress["stage"]) == ("failed", "report")
    assert progress["error"].startswith("ReportGenerationError: the report could not be generated: picture ")
    assert broken_path in progress["error"] and "section 8 (Memorization)" in progress["error"]
    assert "Traceback" not in progress["error"]
    assert not Report.objects.filter(audit=audit).exists()
    assert not list(Path(issuing.report_folder(audit)).iterdir())  # no half-written report files

    results = quality_client.get(f"/api/audits/{audit.pk}/results/").json()
    earlier = ["fidelity", "phototype", "utility", "memorization", "detectability", "detector", "explanations"]
    assert sorted(results["stages"]) == sorted(earlier)
    assert results["stages"]["fidelity"]["generated"]["frechet"]["value"] > 0
    assert results["progress"]["error"] == progress["error"]
    stored_at = dict(audit.results.values_list("stage", "created_at"))

    # Fix the cause (restore the picture), then retry the report only.
    Path(default_storage.path(broken_path)).write_bytes(damaged[broken_path])
    with django_capture_on_commit_callbacks(execute=True):
        retried = quality_client.post(f"/api/audits/{audit.pk}/retry-report/")
    assert retried.status_code == 202, retried.content
    audit.refresh_from_db()
    assert (audit.status, audit.error) == ("succeeded", "")
    after = quality_client.get(f"/api/audits/{audit.pk}/results/").json()["stages"]
    assert {stage: after[stage] for stage in earlier} == results["stages"]
    assert {s: t for s, t in audit.results.values_list("stage", "created_at") if s != "report"} == stored_at  # not redone
    (report,) = assert_reports_consistent(audit)
    assert after["report"]["pdf_sha256"] == report.pdf_sha256
    pdf = quality_client.get(f"/api/reports/{report.pk}/pdf/")
    assert hashlib.sha256(b"".join(pdf.streaming_content)).hexdigest() == report.pdf_sha256
    assert quality_client.post(f"/api/audits/{audit.pk}/retry-report/").status_code == 409  # succeeded: nothing to retry


@pytest.fixture
def finished_audit(org, quality_user, tmp_path):
    """A finished audit with its draft report v1 (no stage results: the approval path does not need them)."""
    sets = []
    for kind, seed in (("generated", 0), ("reference", 50)):
        image_set = ImageSet.objects.create(organisation=org, name=f"{kind}-set", kind=kind)
        folder = tmp_path / kind
        folder.mkdir()
        for i in range(3):
            (folder / f"{kind}_{i}.png").write_bytes(image_bytes(seed=seed + i))
        ingest_paths(image_set, [folder])
        sets.append(image_set)
    audit = Audit.objects.create(organisation=org, name="approval faults", created_by=quality_user, generated_set=sets[0],
                                 reference_set=sets[1], status=Audit.Status.SUCCEEDED)
    issuing.issue_draft(audit)
    return audit


def _report_files(audit: Audit) -> set[str]:
    return {p.name for p in Path(issuing.report_folder(audit)).iterdir()}


@pytest.mark.django_db(transaction=True)
def test_failed_approvals_leave_no_half_written_version(finished_audit, users, settings, monkeypatch,
                                                        fresh_connection_afterwards):
    audit = finished_audit
    (draft,) = assert_reports_consistent(audit)
    v1_files = _report_files(audit)
    admin = api_client_for(users[Role.ADMIN])
    url = f"/api/reports/{draft.pk}/approve/"
    # An electronic signature (tests/auditor/reporting/test_signatures.py): the signer's password, meaning, reason.
    SIGNATURE = {"password": "correct-horse-battery", "meaning": "approved", "reason": "fault test"}  # noqa: N806

    def assert_nothing_issued(response, status: int, *fragments: str) -> None:
        assert response.status_code == status, response.content
        detail = response.json()["detail"]
        for fragment in fragments:
            assert fragment in detail, detail
        assert "Traceback" not in detail
        assert [r.version for r in assert_reports_consistent(audit)] == [1]
        assert not Signature.objects.exists()  # nothing signed either
        Report.objects.get(pk=draft.pk)  # the draft is untouched: still the latest, still approvable
        assert sha256_of(draft.pdf_path) == draft.pdf_sha256

    # a) The renderer fails (reportlab cannot lay out a flowable).
    def layout_fails(self, *args, **kwargs):
        raise LayoutError("Flowable <Table> too large on page 3")

    with monkeypatch.context() as patch:
        patch.setattr(pdf_module.ReportTemplate, "multiBuild", layout_fails)
        assert_nothing_issued(admin.post(url, SIGNATURE, format="json"), 500, "the PDF renderer failed", "LayoutError", "too large")
    assert _report_files(audit) == v1_files

    # b) The volume is full while the PDF is written (a partial temporary file reaches the disk).
    with monkeypatch.context() as patch:
        volume = FailingVolume(patch, settings.MEDIA_ROOT / "reports", free_bytes=4096)
        assert_nothing_issued(admin.post(url, SIGNATURE, format="json"), 507, "No space left on device (ENOSPC)", "nothing was issued")
        assert len(volume.failed) == 1
    assert _report_files(audit) == v1_files

    # c) The PDF is written, then the JSON twin fails with an I/O error: the PDF of the failed attempt is removed.
    with monkeypatch.context() as patch:
        volume = FailingVolume(patch, settings.MEDIA_ROOT / "reports", free_bytes=100, error=errno.EIO, healthy_files=1)
        assert_nothing_issued(admin.post(url, SIGNATURE, format="json"), 500, "Input/output error (EIO)")
        assert len(volume.opened) == 2 and len(volume.failed) == 1
    assert _report_files(audit) == v1_files

    # d) Both files are written, then the database connection drops before the version's row is committed.
    real_write = issuing.write_file_atomically
    writes = {"n": 0}

    def write_then_drop(target, data):
        real_write(target, data)
        writes["n"] += 1
        if writes["n"] == 2:
            drop_database_connection()

    with monkeypatch.context() as patch:
        patch.setattr(issuing, "write_file_atomically", write_then_drop)
        assert_nothing_issued(admin.post(url, SIGNATURE, format="json"), 503, "could not be recorded", "no new version was issued")
    # The cleanup could not ask the database whether a row points at the attempt's files, so it kept them:
    # unreferenced files are harmless, a row without its file is not.
    leftovers = _report_files(audit) - v1_files
    assert len(leftovers) == 2
    assert not [r for r in Report.objects.all() if Path(r.pdf).name in leftovers or Path(r.json).name in leftovers]

    # e) With the faults gone the approval issues version 2, and every version still matches its file.
    approved = admin.post(url, SIGNATURE, format="json")
    assert approved.status_code == 201, approved.content
    v1, v2 = assert_reports_consistent(audit)
    assert (v2.status, v2.approved_by_id, v1.pk) == ("approved", users[Role.ADMIN].pk, draft.pk)
    assert (v2.signature.report_id, v2.signature.signed_pdf_sha256) == (v1.pk, v1.pdf_sha256)
    assert "APPROVED" in PdfReader(v2.pdf_path).pages[0].extract_text()


@pytest.mark.django_db
def test_a_losing_writer_of_the_same_version_cannot_change_the_recorded_file(finished_audit):
    """Two writers of one version (two redeliveries of the report stage, say): the second fails on the database's
    uniqueness, and the file the first recorded keeps the bytes its SHA-256 names."""
    from auditor.reporting.builder import build_document

    audit = finished_audit
    first = build_document(audit, version=2, status="draft", prepared_by=audit.created_by)
    second = build_document(audit, version=2, status="draft", prepared_by=audit.created_by)
    second.title += " (second writer)"
    recorded = issuing.write_report(audit, first, prepared_by=audit.created_by)
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        issuing.write_report(audit, second, prepared_by=audit.created_by)
    assert sha256_of(recorded.pdf_path) == recorded.pdf_sha256
    assert_reports_consistent(audit)
    assert len(list(Path(issuing.report_folder(audit)).glob("report-v2*"))) == 2  # the loser's files are removed
