"""The audit trail: who changed an audit (its criteria and sets included), an image set or a reader study, when, and
what changed from what to what.

Recorded by django-auditlog (one append-only table, `auditlog_logentry`, written from model signals on every save
and delete, with the old and new value of each tracked field as JSON). Nothing here writes entries; the trail is read
with `trail_of_audit`. Signatures (auditor/models/signatures.py) join the trail as entries of their own.

Append-only: no endpoint changes or deletes an entry (the API and the page only read; auditlog's admin refuses
add and change), and migration 0008 adds a database trigger that refuses UPDATE of an entry. A user who appears in
the trail cannot be deleted (that would set the entry's actor to NULL, an UPDATE): deactivate the account instead.
"""
from __future__ import annotations

from datetime import datetime
from datetime import timezone as dt_timezone

from auditlog.middleware import AuditlogMiddleware
from auditlog.models import LogEntry
from auditlog.registry import auditlog
from django.contrib.auth import get_user_model
from django.utils.functional import SimpleLazyObject

from auditor.models.audits import Audit
from auditor.models.core import ImageSet
from auditor.models.signatures import Signature

AUDIT_FIELDS = ["name", "generated_set", "reference_set", "training_set", "baseline_set", "include_copy_baseline",
                "detector", "reader_study", "target_phototype", "criteria", "extractor_id", "feature_precision", "seed",
                "status", "locked_at"]
IMAGE_SET_FIELDS = ["name", "kind", "generator_name", "generator_version", "generator_weights_sha256", "description",
                    "intended_use", "manifest_sha256"]
STUDY_FIELDS = ["name", "description", "status", "seed", "balance_by", "repeat_fraction", "ask_call", "confidence_scale",
                "ask_quality", "ask_diagnosis", "diagnosis_choices", "allow_changes", "image_size", "opened_at",
                "closed_at"]  # registered by reader_study.models (this package cannot import it)
SET_FIELDS = {"generated_set", "reference_set", "training_set", "baseline_set"}
ACTIONS = {LogEntry.Action.CREATE: "created", LogEntry.Action.UPDATE: "changed", LogEntry.Action.DELETE: "deleted",
           LogEntry.Action.ACCESS: "accessed"}

auditlog.register(Audit, include_fields=AUDIT_FIELDS)
auditlog.register(ImageSet, include_fields=IMAGE_SET_FIELDS)


class TrailActorMiddleware(AuditlogMiddleware):
    """auditlog's middleware, with the actor looked up when an entry is written rather than when the request arrives:
    the API authenticates its tokens inside the view (DRF), after the middleware has run, and then sets the request's
    user, which this reads."""

    @staticmethod
    def _get_actor(request):
        def authenticated():
            user = getattr(request, "user", None)
            return user if isinstance(user, get_user_model()) and user.is_authenticated else None

        return SimpleLazyObject(authenticated)


def _utc(moment: datetime | None) -> str | None:
    return moment.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def _flatten(prefix: str, old, new) -> list[dict]:
    """One row per changed leaf: a criteria edit reads "criteria.kid.threshold: 0.05 → 10.0", not two JSON blobs."""
    if isinstance(old, dict) or isinstance(new, dict):
        old, new = old if isinstance(old, dict) else {}, new if isinstance(new, dict) else {}
        rows = []
        for key in sorted(set(old) | set(new), key=str):
            rows += _flatten(f"{prefix}.{key}", old.get(key), new.get(key))
        return rows
    return [] if old == new else [{"field": prefix, "old": old, "new": new}]


def _set_label(pk) -> str | None:
    if pk in (None, "", "None"):
        return None
    image_set = ImageSet.objects.filter(pk=pk).only("name").first()
    return f"#{pk} {image_set.name}" if image_set else f"#{pk} (deleted)"


def describe_changes(entry: LogEntry) -> list[dict]:
    rows = []
    for field, values in sorted((entry.changes_dict or {}).items()):
        old, new = values if isinstance(values, (list, tuple)) and len(values) == 2 else (None, values)
        if entry.content_type.model == "audit" and field in SET_FIELDS:
            old, new = _set_label(old), _set_label(new)
        if field == "criteria" and entry.action == LogEntry.Action.CREATE and old in (None, "None"):
            old = {}
        rows += _flatten(field, old, new) if isinstance(old, dict) or isinstance(new, dict) else \
            [{"field": field, "old": old, "new": new}]
    if entry.action == LogEntry.Action.CREATE:  # what it was created with, not every blank field
        rows = [row for row in rows if row["new"] not in (None, "", [], {})]
    return rows


def _entry(entry: LogEntry, what: str) -> dict:
    return {"at": _utc(entry.timestamp), "who": entry.actor.get_username() if entry.actor else "system",
            "what": what, "action": ACTIONS.get(entry.action, str(entry.action)), "changes": describe_changes(entry)}


def trail_of_audit(audit: Audit) -> list[dict]:
    """The audit's trail, oldest first: its own entries, its image sets', its reader study's, and the signatures on
    its reports. Each: {"at" (UTC), "who", "what", "action", "changes": [{"field", "old", "new"}]}."""
    objects = [("auditor", "audit", audit.pk, f"audit #{audit.pk}")]
    for field in ("generated_set", "reference_set", "training_set", "baseline_set"):
        set_id = getattr(audit, f"{field}_id")
        if set_id:
            objects.append(("auditor", "imageset", set_id, f"{field.replace('_', ' ')} #{set_id}"))
    if audit.reader_study_id:
        objects.append(("reader_study", "study", audit.reader_study_id, f"reader study #{audit.reader_study_id}"))
    rows = []
    for app_label, model, pk, what in objects:
        entries = LogEntry.objects.filter(content_type__app_label=app_label, content_type__model=model,
                                          object_pk=str(pk)).select_related("actor", "content_type")
        rows += [(entry.timestamp, entry.pk, _entry(entry, what)) for entry in entries]
    for signature in Signature.objects.filter(report__audit=audit).select_related("report"):
        rows.append((signature.signed_at, 0, {
            "at": _utc(signature.signed_at), "who": signature.signer_username,
            "what": f"report v{signature.report.version}", "action": f"signed: {signature.meaning}",
            "changes": [{"field": "reason", "old": None, "new": signature.reason},
                        {"field": "signed PDF SHA-256", "old": None, "new": signature.signed_pdf_sha256}]}))
    return [row for _, _, row in sorted(rows, key=lambda item: (item[0], item[1]))]
