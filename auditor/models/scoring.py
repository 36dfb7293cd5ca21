"""A detector applied to a whole image set: progress and the set-level summary (per-image rows are ImageScore)."""
from __future__ import annotations

from django.conf import settings
from django.db import models

from auditor.models.core import ImageSet
from auditor.models.training import DetectorRun


class DetectorScoring(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    detector = models.ForeignKey(DetectorRun, on_delete=models.CASCADE, related_name="scorings")
    image_set = models.ForeignKey(ImageSet, on_delete=models.CASCADE, related_name="detector_scorings")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField(default=0, help_text="images in the set when scoring started")
    processed = models.PositiveIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True,
                               help_text="n, mean P(synthetic), share ≥ 0.5 and, for sets of known class, AUC with CI")
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["detector", "image_set"], name="one_scoring_per_detector_set")]

    def __str__(self) -> str:
        return f"detector {self.detector_id} on {self.image_set} ({self.status})"
