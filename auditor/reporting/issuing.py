"""Issuing reports: render a document to PDF + JSON twin in media storage, record the SHA-256, approve.

Reports are immutable once written: approval issues a new version (status approved, approver and time on
every page); the earlier versions stay downloadable.

A version is written all or nothing: the PDF is rendered in memory (its embedded pictures checked first, so a
corrupt heat map is named), both files are written under names that carry the PDF's SHA-256 (temporary file,
fsync, rename: a failed or concurrent attempt can never overwrite a recorded file) and only then is the Report
row created. A failure leaves no row, and no file that a row could point at.
"""
from __future__ import annotations

import errno
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Q
from django.utils import timezone
from PIL import Image as PILImage

from auditor.access import role_in
from auditor.ingestion.importer import describe_os_error
from auditor.models import Audit, Report, Role
from auditor.models.audits import STAGES
from auditor.reporting import ImageGrid, ReportDocument, render_pdf_bytes
from auditor.reporting.builder import build_document
from metrics.atomic_files import write_file_atomically

APPROVER_ROLES = {Role.ADMIN}


class ReportError(Exception):
    pass


class ReportGenerationError(ReportError):
    """The report could not be produced (unreadable artefact, renderer error, storage full); nothing was issued."""

    def __init__(self, message: str, *, storage_full: bool = False):
        super().__init__(message)
        self.storage_full = storage_full


def report_folder(audit: Audit) -> Path:
    folder = Path(settings.MEDIA_ROOT) / "reports" / f"audit-{audit.pk}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def check_pictures(document: ReportDocument) -> None:
    """Decode every picture the PDF embeds (heat maps, image pairs): a corrupt file is named, with its section."""
    for section in document.sections:
        for block in section.blocks:
            if not isinstance(block, ImageGrid):
                continue
            for picture in block.images:
                try:
                    with PILImage.open(picture.path) as image:
                        image.load()
                except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError… for broken files
                    raise ReportGenerationError(
                        f"the report could not be generated: picture {picture.path} of section {section.number} "
                        f"({section.title}) cannot be read ({type(exc).__name__}: {exc}); restore or regenerate it "
                        "and retry") from exc


def render(document: ReportDocument) -> bytes:
    check_pictures(document)
    try:
        return render_pdf_bytes(document)
    except Exception as exc:
        raise ReportGenerationError(f"the report could not be generated: the PDF renderer failed "
                                    f"({type(exc).__name__}: {exc})") from exc


def _discard_unreferenced(paths: list[Path]) -> None:
    """After a failed attempt: remove its files unless a committed row points at them (a lost acknowledgement, or
    a concurrent attempt that wrote the very same bytes)."""
    for path in paths:
        try:
            if Report.objects.filter(Q(pdf=str(path)) | Q(json=str(path))).exists():
                continue
        except DatabaseError:
            continue  # cannot tell: an unreferenced file is harmless, a row without its file is not
        path.unlink(missing_ok=True)


def write_report(audit: Audit, document: ReportDocument, *, prepared_by, status: str = "draft",
                 approved_by=None, approved_at=None) -> Report:
    pdf_bytes = render(document)
    sha256 = hashlib.sha256(pdf_bytes).hexdigest()
    twin = {**document.to_dict(), "pdf_sha256": sha256}
    folder = Path(settings.MEDIA_ROOT) / "reports" / f"audit-{audit.pk}"
    stem = f"report-v{document.version}-{sha256[:16]}"
    pdf_path, json_path = folder / f"{stem}.pdf", folder / f"{stem}.json"
    written: list[Path] = []
    try:
        report_folder(audit)
        for path, data in ((pdf_path, pdf_bytes),
                           (json_path, json.dumps(twin, indent=1, allow_nan=False, ensure_ascii=False).encode())):
            write_file_atomically(path, data)  # fsynced file and folder: the name exists only with its bytes
            written.append(path)
        with transaction.atomic():  # a savepoint inside approval's transaction: it stays usable for the cleanup
            return Report.objects.create(
                id=_uuid_of(document), audit=audit,
                version=document.version, status=status, pdf=str(pdf_path), json=str(json_path), pdf_sha256=sha256,
                prepared_by=prepared_by, approved_by=approved_by, approved_at=approved_at,
            )
    except OSError as exc:
        _discard_unreferenced(written)
        raise ReportGenerationError(f"the report could not be written to {folder}: {describe_os_error(exc)}; nothing "
                                    "was issued", storage_full=exc.errno in (errno.ENOSPC, errno.EDQUOT)) from exc
    except BaseException:
        _discard_unreferenced(written)
        raise


def _uuid_of(document: ReportDocument):
    import uuid

    return uuid.uuid5(uuid.NAMESPACE_URL, f"dermaudit:{document.report_id}:v{document.version}")


def issue_draft(audit: Audit) -> Report:
    version = (audit.reports.order_by("-version").values_list("version", flat=True).first() or 0) + 1
    document = build_document(audit, version=version, status="draft", prepared_by=audit.created_by)
    return write_report(audit, document, prepared_by=audit.created_by)


def approve_report(report: Report, user) -> Report:
    """Four eyes: an organisation admin other than the preparer approves; the approval is a new version."""
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


def retry_report(audit: Audit, enqueue: Callable[[int], None]) -> None:
    """Generate the report of an audit that failed at the report stage, once the cause is fixed. The earlier
    stages keep their stored results (the pipeline skips stages that have one), so only the report runs."""
    if audit.status != Audit.Status.FAILED:
        raise ReportError(f"the audit is {audit.status}: only a failed audit's report can be retried")
    done = set(audit.results.values_list("stage", flat=True))
    missing = [stage for stage in STAGES[1:-1] if stage not in done]
    if missing:
        raise ReportError(f"stages without results: {', '.join(missing)}; the report needs them (re-run the audit)")
    with transaction.atomic():
        # Conditional: two clicks start one retry.
        if not Audit.objects.filter(pk=audit.pk, status=Audit.Status.FAILED).update(
                status=Audit.Status.RUNNING, stage=STAGES[-1], error="", finished_at=None, stage_started_at=timezone.now()):
            raise ReportError("the report is already being retried")
        transaction.on_commit(lambda: enqueue(audit.pk))
