from __future__ import annotations

from pathlib import Path

from django.core.files.storage import default_storage

from auditor.ingestion.importer import run_ingest
from auditor.models import ImageSet, IngestJob


def ingest_paths(image_set: ImageSet, paths: list[Path], **kwargs) -> IngestJob:
    job = IngestJob.objects.create(image_set=image_set, source="test", source_paths=[str(p) for p in paths])
    return run_ingest(job, [Path(p) for p in paths], **kwargs)


def errors_by_file(image_set: ImageSet) -> dict[str, str]:
    return dict(image_set.ingest_errors.values_list("file_name", "reason"))


def stored_blob_files() -> list[Path]:
    root = Path(default_storage.location) / "images"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
