"""Core data model: organisations and roles, image sets and their images, ingest jobs and errors.

Images are content-addressed: the stored file is named by the SHA-256 of its bytes, and a set holds
each distinct picture (by decoded-pixel hash) once.
"""
from __future__ import annotations

import hashlib
import uuid
from collections import Counter

from django.conf import settings
from django.db import models


class Organisation(models.Model):
    name = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    QUALITY = "quality", "Quality (uploads and audits)"
    READER = "reader", "Reader (rates images in studies)"
    DEVELOPER = "developer", "Developer (API access to reports)"
    ADMIN = "admin", "Organisation admin"


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "organisation"], name="one_membership_per_org")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.organisation} ({self.role})"


class ImageSet(models.Model):
    class Kind(models.TextChoices):
        GENERATED = "generated"
        REFERENCE = "reference"
        BASELINE = "baseline"

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="image_sets")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    generator_name = models.CharField(max_length=200, blank=True)
    generator_version = models.CharField(max_length=100, blank=True)
    generator_weights_sha256 = models.CharField(max_length=64, blank=True)
    description = models.TextField(blank=True)
    intended_use = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    manifest_sha256 = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["organisation", "name"], name="unique_set_name_per_org")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def compute_manifest_sha256(self) -> str:
        """SHA-256 over the sorted per-image content hashes, one per line."""
        hashes = sorted(self.images.values_list("sha256", flat=True))
        return hashlib.sha256("\n".join(hashes).encode()).hexdigest() if hashes else ""

    def refresh_manifest(self) -> str:
        self.manifest_sha256 = self.compute_manifest_sha256()
        self.save(update_fields=["manifest_sha256"])
        return self.manifest_sha256

    def label_counts(self) -> dict[str, dict[str, int]]:
        rows = self.images.values_list("diagnosis", "fitzpatrick", "acquisition")
        diagnosis, fitzpatrick, acquisition = Counter(), Counter(), Counter()
        for dx, fst, acq in rows:
            diagnosis[dx or "unlabelled"] += 1
            fitzpatrick[str(fst) if fst else "unlabelled"] += 1
            acquisition[acq or "unlabelled"] += 1
        return {"diagnosis": dict(diagnosis), "fitzpatrick": dict(fitzpatrick), "acquisition": dict(acquisition)}


class Image(models.Model):
    class Acquisition(models.TextChoices):
        DERMOSCOPIC = "dermoscopic"
        CLINICAL = "clinical"

    image_set = models.ForeignKey(ImageSet, on_delete=models.CASCADE, related_name="images")
    sha256 = models.CharField(max_length=64, db_index=True, help_text="SHA-256 of the stored file's bytes")
    pixel_sha256 = models.CharField(max_length=64, help_text="SHA-256 of the decoded 8-bit RGB pixels and size")
    source_sha256 = models.CharField(max_length=64, help_text="SHA-256 of the uploaded bytes")
    file = models.CharField(max_length=300, help_text="storage name of the content-addressed file")
    original_name = models.CharField(max_length=500)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    original_format = models.CharField(max_length=20)
    original_mode = models.CharField(max_length=20)
    normalisation_notes = models.JSONField(default=list, blank=True)
    diagnosis = models.CharField(max_length=100, blank=True)
    fitzpatrick = models.PositiveSmallIntegerField(null=True, blank=True, choices=[(i, str(i)) for i in range(1, 7)])
    acquisition = models.CharField(max_length=20, choices=Acquisition.choices, blank=True)
    extra_labels = models.JSONField(default=dict, blank=True)
    # Estimated from the pixels (metrics.phototype), filled by the first audit that needs it.
    fitzpatrick_estimate = models.PositiveSmallIntegerField(null=True, blank=True)
    ita_deg = models.FloatField(null=True, blank=True)
    phototype_method = models.CharField(max_length=40, blank=True, help_text="empty = not estimated yet")
    phototype_note = models.CharField(max_length=300, blank=True, help_text="why the estimate is undetermined")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["image_set", "pixel_sha256"], name="one_copy_per_set"),
            models.CheckConstraint(
                condition=models.Q(fitzpatrick__isnull=True) | models.Q(fitzpatrick__gte=1, fitzpatrick__lte=6),
                name="fitzpatrick_1_to_6",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.original_name} [{self.sha256[:12]}]"

    @property
    def path(self):
        from django.core.files.storage import default_storage

        return default_storage.path(self.file)


class IngestJob(models.Model):
    """One upload/zip/folder import into a set; its progress is what the API and web page show."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    image_set = models.ForeignKey(ImageSet, on_delete=models.CASCADE, related_name="ingest_jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    source = models.CharField(max_length=500, help_text="what was imported (upload names, zip name or folder)")
    source_paths = models.JSONField(default=list, help_text="files/folders the task reads (staged uploads or a server folder)")
    staging_dir = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    imported = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0, help_text="files already in the set under the same name")
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"ingest {self.id} into {self.image_set_id}: {self.status}"


class IngestError(models.Model):
    image_set = models.ForeignKey(ImageSet, on_delete=models.CASCADE, related_name="ingest_errors")
    job = models.ForeignKey(IngestJob, null=True, on_delete=models.CASCADE, related_name="errors")
    file_name = models.CharField(max_length=500)
    reason = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.file_name}: {self.reason}"


class DuplicateRecord(models.Model):
    """A file whose pixels were already in the set: stored once, reported here."""

    image_set = models.ForeignKey(ImageSet, on_delete=models.CASCADE, related_name="duplicate_records")
    job = models.ForeignKey(IngestJob, null=True, on_delete=models.CASCADE, related_name="duplicate_records")
    file_name = models.CharField(max_length=500)
    duplicate_of = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="duplicate_records")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
