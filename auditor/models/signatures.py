"""Electronic signatures on report versions (21 CFR Part 11 §11.50/§11.70, EU GMP Annex 11 §14): who signed, when
(UTC), what the signature means, why, and the SHA-256 of the exact PDF that was signed.

A signature is written once and never changed or removed: the model refuses saves of an existing row, updates and
deletes through the ORM, and migration 0008 adds a database trigger that refuses UPDATE (SQLite and PostgreSQL).
The version a signature issued (whose sign-off section prints it) points back at it: `Report.signature`.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models


class AppendOnlyError(Exception):
    """Raised on any attempt to change or delete a signature."""


class SignatureQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("signatures are append-only: they cannot be changed")

    def delete(self):
        raise AppendOnlyError("signatures are append-only: they cannot be deleted")


class Signature(models.Model):
    class Meaning(models.TextChoices):
        REVIEWED = "reviewed", "Reviewed"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    report = models.ForeignKey("auditor.Report", on_delete=models.PROTECT, related_name="signatures",
                               help_text="the version that was signed")
    signed_pdf_sha256 = models.CharField(max_length=64, help_text="SHA-256 of the signed version's PDF, checked "
                                                                  "against its bytes when it was signed")
    signer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # As printed: the account's name and full name at the moment of signing (an account renamed later does not
    # change what was signed).
    signer_username = models.CharField(max_length=150)
    signer_full_name = models.CharField(max_length=300, blank=True)
    signed_at = models.DateTimeField(help_text="when it was signed (stored and shown in UTC)")
    meaning = models.CharField(max_length=10, choices=Meaning.choices)
    reason = models.TextField()
    # The verdict of the signed version when it was signed; an approval of a failing report says so, beside its reason.
    verdict = models.CharField(max_length=12, blank=True)
    failed_criteria = models.JSONField(default=list, blank=True)

    objects = SignatureQuerySet.as_manager()

    class Meta:
        ordering = ["signed_at", "id"]

    def __str__(self) -> str:
        return (f"{self.meaning} by {self.signer_username} at {self.signed_at:%Y-%m-%dT%H:%M:%SZ} "
                f"(report v{self.report.version})")

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("signatures are append-only: they cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("signatures are append-only: they cannot be deleted")

    @property
    def signer_display(self) -> str:
        return f"{self.signer_username} ({self.signer_full_name})" if self.signer_full_name else self.signer_username
