"""Plain-text summaries for the command line."""
from __future__ import annotations

from auditor.models import ImageSet, IngestJob


def image_set_summary(image_set: ImageSet, job: IngestJob | None = None) -> str:
    lines = [
        f"Image set {image_set.name!r} ({image_set.kind}), organisation {image_set.organisation}",
        f"  images: {image_set.images.count()}   manifest SHA-256: {image_set.manifest_sha256}",
    ]
    if job is not None:
        lines.append(f"  this import: {job.message} (of {job.total} files)")
    for label, counts in image_set.label_counts().items():
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
        lines.append(f"  {label}: {shown}")
    duplicates = list(image_set.duplicate_records.select_related("duplicate_of"))
    if duplicates:
        lines.append(f"  duplicates ({len(duplicates)}):")
        lines.extend(f"    {d.file_name} = {d.duplicate_of.original_name}" for d in duplicates)
    errors = list(image_set.ingest_errors.all()[:20])
    if errors:
        lines.append(f"  ingest errors ({image_set.ingest_errors.count()}):")
        lines.extend(f"    {e.file_name}: {e.reason}" for e in errors)
    return "\n".join(lines)
