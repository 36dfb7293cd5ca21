"""Issuing reports: render a document to PDF + JSON twin in media storage, record the SHA-256, approve.

Reports are immutable once written: approval issues a new version (status approved, approver and time on
every page); the earlier versions stay downloadable.
"""
from __future__ import annotations

import json
import subprocess
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .access import role_in
from .models import Audit, Report, Role
from .reports import ReportDocument, render_pdf

APPROVER_ROLES = {Role.ADMIN}


class ReportError(Exception):
    pass


@lru_cache(maxsize=1)
def software_version() -> str:
    """The git commit the service runs (set DERMAUDIT_VERSION where the tree has no .git)."""
    import os

    if os.environ.get("DERMAUDIT_VERSION"):
        return os.environ["DERMAUDIT_VERSION"]
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=settings.BASE_DIR, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=settings.BASE_DIR,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return f"{sha}{'+local-changes' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        from . import __version__

        return f"dermaudit {__version__} (no git)"


def report_folder(audit: Audit) -> Path:
    folder = Path(settings.MEDIA_ROOT) / "reports" / f"audit-{audit.pk}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_report(audit: Audit, document: ReportDocument, *, prepared_by, status: str = "draft",
                 approved_by=None, approved_at=None) -> Report:
    folder = report_folder(audit)
    stem = f"report-v{document.version}"
    pdf_path, json_path = folder / f"{stem}.pdf", folder / f"{stem}.json"
    sha256 = render_pdf(document, pdf_path)
    twin = {**document.to_dict(), "pdf_sha256": sha256}
    tmp = json_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(twin, indent=1, allow_nan=False, ensure_ascii=False))
    tmp.replace(json_path)
    return Report.objects.create(
        id=_uuid_of(document), audit=audit,
        version=document.version, status=status, pdf=str(pdf_path), json=str(json_path), pdf_sha256=sha256,
        prepared_by=prepared_by, approved_by=approved_by, approved_at=approved_at,
    )


def _uuid_of(document: ReportDocument):
    import uuid

    return uuid.uuid5(uuid.NAMESPACE_URL, f"dermaudit:{document.report_id}:v{document.version}")


def issue_draft(audit: Audit) -> Report:
    from .report_builder import build_document

    version = (audit.reports.order_by("-version").values_list("version", flat=True).first() or 0) + 1
    document = build_document(audit, version=version, status="draft", prepared_by=audit.created_by)
    return write_report(audit, document, prepared_by=audit.created_by)


def approve_report(report: Report, user) -> Report:
    """Four eyes: an organisation admin other than the preparer approves; the approval is a new version."""
    from .report_builder import build_document

    audit = report.audit
    if role_in(user, audit.organisation_id) not in APPROVER_ROLES:
        raise PermissionError("only an organisation admin may approve reports")
    if report.prepared_by_id == user.pk:
        raise ReportError("the person who prepared a report cannot approve it")
    if report.status == Report.Status.APPROVED:
        raise ReportError("this version is already approved")
    if audit.status != Audit.Status.SUCCEEDED:
        raise ReportError(f"the audit is {audit.status}: only the report of a finished audit can be approved")
    with transaction.atomic():
        latest = audit.reports.select_for_update().order_by("-version").first()
        if latest.pk != report.pk:
            raise ReportError(f"only the latest version (v{latest.version}) can be approved")
        now = timezone.now()
        document = build_document(audit, version=report.version + 1, status="approved", prepared_by=report.prepared_by,
                                  approved_by=user, approved_at=now)
        return write_report(audit, document, prepared_by=report.prepared_by, status=Report.Status.APPROVED,
                            approved_by=user, approved_at=now)
