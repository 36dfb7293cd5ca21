"""Turning uploaded files (web form or REST multipart) into a staged IngestJob."""
from __future__ import annotations

import uuid
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from .models import ImageSet, IngestJob
from .tasks import ingest_task


class UploadTooLarge(Exception):
    pass


def staging_root() -> Path:
    return Path(settings.MEDIA_ROOT) / "staging"


def stage_uploads(image_set: ImageSet, files: list[UploadedFile], user) -> IngestJob:
    """Copy uploads to a private staging folder (one subfolder each, so names never collide) and create the job."""
    total = sum(f.size or 0 for f in files)
    if total > settings.DERMAUDIT_MAX_UPLOAD_BYTES:
        raise UploadTooLarge(f"upload is {total:,} bytes, over the limit of {settings.DERMAUDIT_MAX_UPLOAD_BYTES:,} bytes")
    job_id = uuid.uuid4()
    folder = staging_root() / str(job_id)
    paths = []
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
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        raise OSError(f"could not store the upload ({exc.strerror or exc}); nothing was imported") from exc
    names = ", ".join(PurePosixPath(p).name for p in paths[:5]) + (" …" if len(paths) > 5 else "")
    return IngestJob.objects.create(
        id=job_id, image_set=image_set, created_by=user, source=names[:500], source_paths=paths, staging_dir=str(folder)
    )


def start_job(job: IngestJob) -> None:
    """Queue the import (runs in-process under the embedded default, on a worker in production)."""
    from django.db import transaction

    transaction.on_commit(lambda: ingest_task.delay(str(job.pk)))
