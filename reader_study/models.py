"""Reader studies: a study draws cases from image sets, invited readers read them in their own order.

Study ── StudyArm (one image set, a count) ── Case (one image, its truth frozen at creation)
  └── Assignment (one reader) ── Showing (one case at one position; a repeated case has a second showing)
                                     └── Answer (at most one per showing: one per reader × case × showing)

Readers only ever see a Showing's random token; the case, its image and its arm stay on the server.
"""
from __future__ import annotations

import secrets

from auditlog.registry import auditlog
from django.conf import settings
from django.db import models

from auditor.models import Image, ImageSet, Organisation
from auditor.models.trail import STUDY_FIELDS

SYNTHETIC_KINDS = frozenset({ImageSet.Kind.GENERATED, ImageSet.Kind.BASELINE})


def new_token() -> str:
    # 128 random bits, URL-safe: not sequential, not derived from the image, the set or the reader.
    return secrets.token_urlsafe(16)


def new_seed() -> int:
    return secrets.randbelow(2**31)


class ReaderProfile(models.Model):
    class Specialty(models.TextChoices):
        DERMATOLOGY = "dermatology", "Dermatology"
        DERMATOPATHOLOGY = "dermatopathology", "Dermatopathology"
        DERMATOLOGY_RESIDENT = "dermatology_resident", "Dermatology resident"
        GENERAL_PRACTICE = "general_practice", "General practice"
        OTHER = "other", "Other"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reader_profile")
    specialty = models.CharField(max_length=40, choices=Specialty.choices)
    years_experience = models.PositiveSmallIntegerField()
    board_certified = models.BooleanField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(years_experience__lte=70), name="plausible_years")]

    def __str__(self) -> str:
        return f"{self.user} ({self.specialty}, {self.years_experience} y)"


class Study(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft"
        OPEN = "open"
        PAUSED = "paused"
        CLOSED = "closed"

    class ConfidenceScale(models.TextChoices):
        NONE = "none", "Not asked"
        FIVE_POINT = "five_point", "1–5"
        PERCENT = "percent", "0–100 slider"

    class BalanceBy(models.TextChoices):
        NONE = "", "No balancing"
        DIAGNOSIS = "diagnosis"
        FITZPATRICK = "fitzpatrick"
        ACQUISITION = "acquisition"

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="reader_studies")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    seed = models.BigIntegerField(default=new_seed, help_text="drives case sampling and every reader's order")
    balance_by = models.CharField(max_length=20, choices=BalanceBy.choices, blank=True, default="")
    repeat_fraction = models.FloatField(default=0.0, help_text="share of cases shown a second time, later")
    ask_call = models.BooleanField(default=True, help_text="real or synthetic?")
    confidence_scale = models.CharField(max_length=12, choices=ConfidenceScale.choices, default=ConfidenceScale.FIVE_POINT)
    ask_quality = models.BooleanField(default=True, help_text="image quality, Likert 1–5")
    ask_diagnosis = models.BooleanField(default=False)
    diagnosis_choices = models.JSONField(default=list, blank=True)
    allow_changes = models.BooleanField(default=False, help_text="readers may revise answers until close")
    image_size = models.PositiveSmallIntegerField(default=512, help_text="every case is served at this square size")
    padded_image_bytes = models.PositiveIntegerField(default=0, help_text="every image response has this length")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["organisation", "name"], name="unique_study_name_per_org"),
            models.CheckConstraint(condition=models.Q(repeat_fraction__gte=0, repeat_fraction__lte=0.5),
                                   name="repeat_fraction_0_to_half"),
            models.CheckConstraint(condition=models.Q(image_size__gte=64, image_size__lte=2048), name="image_size_range"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"

    @property
    def is_closed(self) -> bool:
        return self.status == self.Status.CLOSED

    @property
    def asks_confidence(self) -> bool:
        return self.ask_call and self.confidence_scale != self.ConfidenceScale.NONE


class StudyArm(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="arms")
    image_set = models.ForeignKey(ImageSet, on_delete=models.PROTECT, related_name="study_arms")
    count = models.PositiveIntegerField()
    truth_synthetic = models.BooleanField(help_text="frozen from the set's kind when the study was designed")
    label = models.CharField(max_length=200, help_text="the set's name when the study was designed")

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["study", "image_set"], name="one_arm_per_set")]

    def __str__(self) -> str:
        return f"{self.label} × {self.count}"


class Case(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="cases")
    arm = models.ForeignKey(StudyArm, on_delete=models.CASCADE, related_name="cases")
    image = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="+")
    truth_synthetic = models.BooleanField()
    reference_diagnosis = models.CharField(max_length=100, blank=True)
    image_sha256 = models.CharField(max_length=64, help_text="content hash of the source image (provenance)")
    derivative_key = models.CharField(max_length=64, blank=True, help_text="content key of the blinded rendering")
    derivative_bytes = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["study", "image"], name="one_case_per_image")]

    def __str__(self) -> str:
        return f"case {self.pk} of study {self.study_id}"


class Assignment(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="assignments")
    reader = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reader_assignments")
    order_seed = models.BigIntegerField(help_text="derived from the study seed and the reader; reproduces the order")
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    invited_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["study", "reader"], name="one_assignment_per_reader")]

    def __str__(self) -> str:
        return f"{self.reader} in {self.study}"


class Showing(models.Model):
    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="showings")
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="showings")
    position = models.PositiveIntegerField()
    number = models.PositiveSmallIntegerField(help_text="1 = first showing, 2 = repeat")
    token = models.CharField(max_length=32, unique=True, default=new_token)
    first_served_at = models.DateTimeField(null=True, blank=True)
    last_served_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["assignment_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["assignment", "position"], name="one_showing_per_position"),
            models.UniqueConstraint(fields=["assignment", "case", "number"], name="one_showing_per_case_number"),
            models.CheckConstraint(condition=models.Q(number__in=[1, 2]), name="showing_number_1_or_2"),
        ]

    def __str__(self) -> str:
        return f"showing {self.position} of {self.assignment}"


class Answer(models.Model):
    """One reader's answer to one showing. The OneToOne key is the database's guarantee of one answer per
    reader × case × showing (a showing belongs to one assignment = one reader, and is unique per case and
    number within it)."""

    showing = models.OneToOneField(Showing, on_delete=models.CASCADE, related_name="answer")
    called_synthetic = models.BooleanField(null=True, blank=True)
    confidence = models.PositiveSmallIntegerField(null=True, blank=True)
    quality = models.PositiveSmallIntegerField(null=True, blank=True)
    diagnosis = models.CharField(max_length=100, blank=True)
    served_at = models.DateTimeField(help_text="when the server last sent this case to the reader")
    answered_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(help_text="server-side: answered_at − served_at")
    revisions = models.PositiveSmallIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(quality__isnull=True) | models.Q(quality__gte=1, quality__lte=5),
                                   name="quality_likert_1_to_5"),
            models.CheckConstraint(condition=models.Q(confidence__isnull=True) | models.Q(confidence__lte=100),
                                   name="confidence_at_most_100"),
        ]

    def __str__(self) -> str:
        return f"answer to {self.showing}"


class StudyResult(models.Model):
    """The statistics of a closed study, computed once from its frozen answers."""

    study = models.OneToOneField(Study, on_delete=models.CASCADE, related_name="result")
    payload = models.JSONField()
    answers_sha256 = models.CharField(max_length=64, help_text="SHA-256 of the answers CSV the numbers come from")
    computed_at = models.DateTimeField(auto_now_add=True)


# The audit trail (auditor/models/trail.py) records who changed a study's design or state, when, from what to what.
auditlog.register(Study, include_fields=STUDY_FIELDS)
