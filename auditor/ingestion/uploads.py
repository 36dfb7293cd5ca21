"""Turning uploaded files (web form or REST multipart) into a staged IngestJob."""
from __future__ import annotations

import shutil
import uuid
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.http import UnreadablePostError

from auditor.ingestion.importer import describe_os_error
from auditor.ingestion.tasks import ingest_task
from auditor.models import ImageSet, IngestJob


class UploadTooLarge(Exception):
    pass


class UploadStorageError(OSError):
    """An upload could not be written to disk (full volume, I/O error); the views answer 507 with this message."""

    def __init__(self, message: str, cause: OSError | None = None):
        super().__init__(cause.errno if cause else None, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def staging_root() -> Path:
    return Path(settings.MEDIA_ROOT) / "staging"


def received_files(request, field: str = "files") -> list[UploadedFile]:
    """The uploaded files of a request. Large uploads are spooled to temporary files while the request is parsed;
    when that write fails, the partial temporary files are removed and the error names the file being received."""
    try:
        return request.FILES.getlist(field)
    except UnreadablePostError:
        raise  # the client went away mid-upload: not a storage fault
    except OSError as exc:
        handlers = getattr(request, "upload_handlers", [])
        name = next((h.file_name for h in handlers if getattr(h, "file_name", None)), "the upload")
        for handler in handlers:
            handler.upload_interrupted()
        raise UploadStorageError(f"could not receive the upload: {name}: {describe_os_error(exc)}; nothing from "
                                 "this upload was imported", exc) from exc


def stage_uploads(image_set: ImageSet, files: list[UploadedFile], user) -> IngestJob:
    """Copy uploads to a private staging folder (one subfolder each, so names never collide) and create the job."""
    total = sum(f.size or 0 for f in files)
    if total > settings.DERMAUDIT_MAX_UPLOAD_BYTES:
        raise UploadTooLarge(f"upload is {total:,} bytes, over the limit of {settings.DERMAUDIT_MAX_UPLOAD_BYTES:,} bytes")
    job_id = uuid.uuid4()
    folder = staging_root() / str(job_id)
    paths = []
    name = "upload"
    try:
        for index, upload in enumerate(files):
            # Only the base name is kept: a client-supplied path never chooses where we write.
            name = PurePosixPath((upload.name or "upload").replace("\\", "/")).name or "upload"
            target = folder / f"{index:05d}" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as handle:
                for chunk in upload.chunks():
                    handle.write(chunk)
            paths.append(str(target))
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)  # partial copies included: nothing of this upload stays
        raise UploadStorageError(f"could not store the upload: {name}: {describe_os_error(exc)}; nothing from this "
                                 "upload was imported", exc) from exc
    names = ", ".join(PurePosixPath(p).name for p in paths[:5]) + (" …" if len(paths) > 5 else "")
    try:
        return IngestJob.objects.create(
            id=job_id, image_set=image_set, created_by=user, source=names[:500], source_paths=paths, staging_dir=str(folder)
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # no job will ever read these copies
        raise


def start_job(job: IngestJob) -> None:
    """Queue the import (runs in-process under the embedded default, on a worker in production)."""
    from django.db import transaction

    transaction.on_commit(lambda: ingest_task.delay(str(job.pk)))
