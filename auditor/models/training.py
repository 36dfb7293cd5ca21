"""Training runs the service performs itself: reference generators and synthetic-image detectors."""
from __future__ import annotations

from django.conf import settings
from django.db import models

from auditor.models.core import Image, ImageSet, Organisation


class TrainingStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    CANCELLED = "cancelled"
    FAILED = "failed"


ACTIVE_TRAINING = (TrainingStatus.QUEUED, TrainingStatus.RUNNING)


class TrainingRun(models.Model):
    """Shared fields: who, what, progress, the checkpoint and its hash."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=TrainingStatus.choices, default=TrainingStatus.QUEUED)
    config = models.JSONField(default=dict)
    seed = models.BigIntegerField(default=0)
    max_seconds = models.FloatField(null=True, blank=True)
    max_steps = models.PositiveIntegerField(null=True, blank=True)
    progress = models.JSONField(default=dict, help_text="latest step, losses, elapsed seconds")
    cancel_requested = models.BooleanField(default=False)
    checkpoint = models.CharField(max_length=500, blank=True, help_text="path under DERMAUDIT_MODEL_DIR")
    checkpoint_sha256 = models.CharField(max_length=64, blank=True)
    message = models.TextField(blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at"]

    def request_cancel(self) -> bool:
        """Ask a queued or running run to stop (at its next progress report); False when it had already finished."""
        updated = type(self).objects.filter(pk=self.pk, status__in=ACTIVE_TRAINING).update(cancel_requested=True)
        self.refresh_from_db()
        return bool(updated)


class GeneratorRun(TrainingRun):
    class Kind(models.TextChoices):
        DCGAN = "dcgan"
        CDCGAN = "cdcgan"
        VAE = "vae"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    reference_set = models.ForeignKey(ImageSet, on_delete=models.PROTECT, related_name="generator_runs")
    condition_label = models.CharField(max_length=50, blank=True, help_text="cdcgan: diagnosis or fitzpatrick")

    def __str__(self) -> str:
        return f"{self.kind} on {self.reference_set} ({self.status})"


class DetectorRun(TrainingRun):
    reference_set = models.ForeignKey(ImageSet, on_delete=models.PROTECT, related_name="detector_runs_as_real")
    synthetic_sets = models.ManyToManyField(ImageSet, related_name="detector_runs_as_synthetic")
    evaluation = models.JSONField(default=dict, blank=True, help_text="test-split metrics stored with the detector")

    def __str__(self) -> str:
        return f"detector on {self.reference_set} ({self.status})"


class ImageScore(models.Model):
    """A detector's calibrated P(synthetic) for one image."""

    detector = models.ForeignKey(DetectorRun, on_delete=models.CASCADE, related_name="scores")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="detector_scores")
    probability_synthetic = models.FloatField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["detector", "image"], name="one_score_per_detector_image")]
