"""Issuing reports: render a document to PDF + JSON twin in media storage, record the SHA-256, approve.

Reports are immutable once written: an electronic signature (sign_report: password, meaning, reason; recorded
append-only with the signed PDF's SHA-256) issues a new version whose sign-off section prints it; "approved" makes
it approved (approver and time on every page). The earlier versions stay downloadable.

A version is written all or nothing: the PDF is rendered in memory (its embedded pictures checked first, so a
corrupt heat map is named), both files are written under names that carry the PDF's SHA-256 (temporary file,
fsync, rename: a failed or concurrent attempt can never overwrite a recorded file) and only then is the Report
row created. A failure leaves no row, and no file that a row could point at.

Files are recorded by storage name (relative to MEDIA_ROOT), and pictures are read through the default storage:
a copied media folder (a restored backup, a new host) keeps every report readable.
"""
from __future__ import annotations

import errno
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from django.contrib.auth import authenticate
from django.core.files.storage import default_storage
from django.db import DatabaseError, transaction
from django.db.models import Q
from django.utils import timezone
from PIL import Image as PILImage

from auditor.access import role_in
from auditor.ingestion.importer import describe_os_error
from auditor.models import Audit, Report, Role, Signature
from auditor.models.audits import STAGES
from auditor.models.storage import media_path
from auditor.reporting import ImageGrid, ReportDocument
from auditor.reporting.builder import build_document
from auditor.reporting.criteria import evaluate_criteria, results_of
from metrics.atomic_files import write_file_atomically

APPROVER_ROLES = {Role.ADMIN}


class ReportError(Exception):
    pass


class ReportGenerationError(ReportError):
    """The report could not be produced (unreadable artefact, renderer error, storage full); nothing was issued."""

    def __init__(self, message: str, *, storage_full: bool = False):
        super().__init__(message)
        self.storage_full = storage_full


def report_folder_name(audit: Audit) -> str:
    return f"reports/audit-{audit.pk}"


def report_folder(audit: Audit) -> Path:
    folder = media_path(report_folder_name(audit))
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
                    with default_storage.open(picture.path, "rb") as file, PILImage.open(file) as image:
                        image.load()
                except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError… for broken files
                    raise ReportGenerationError(
                        f"the report could not be generated: picture {picture.path} of section {section.number} "
                        f"({section.title}) cannot be read ({type(exc).__name__}: {exc}); restore or regenerate it "
                        "and retry") from exc


def render(document: ReportDocument) -> bytes:
    from auditor.reporting.pdf import render_pdf_bytes  # reportlab loads on first use

    check_pictures(document)
    try:
        return render_pdf_bytes(document, picture_file=default_storage.path)
    except Exception as exc:
        raise ReportGenerationError(f"the report could not be generated: the PDF renderer failed "
                                    f"({type(exc).__name__}: {exc})") from exc


def _discard_unreferenced(names: list[str]) -> None:
    """After a failed attempt: remove its files unless a committed row points at them (a lost acknowledgement, or
    a concurrent attempt that wrote the very same bytes)."""
    for name in names:
        try:
            if Report.objects.filter(Q(pdf=name) | Q(json=name)).exists():
                continue
        except DatabaseError:
            continue  # cannot tell: an unreferenced file is harmless, a row without its file is not
        media_path(name).unlink(missing_ok=True)


def write_report(audit: Audit, document: ReportDocument, *, prepared_by, status: str = "draft",
                 approved_by=None, approved_at=None, signature=None) -> Report:
    pdf_bytes = render(document)
    sha256 = hashlib.sha256(pdf_bytes).hexdigest()
    twin = {**document.to_dict(), "pdf_sha256": sha256}
    folder = report_folder_name(audit)
    stem = f"report-v{document.version}-{sha256[:16]}"
    pdf_name, json_name = f"{folder}/{stem}.pdf", f"{folder}/{stem}.json"
    written: list[str] = []
    try:
        report_folder(audit)
        for name, data in ((pdf_name, pdf_bytes),
                           (json_name, json.dumps(twin, indent=1, allow_nan=False, ensure_ascii=False).encode())):
            # Written in place, not through Storage.save (which renames on a clash): fsynced file and folder, the
            # name exists only with its bytes.
            write_file_atomically(media_path(name), data)
            written.append(name)
        with transaction.atomic():  # a savepoint inside approval's transaction: it stays usable for the cleanup
            return Report.objects.create(
                id=_uuid_of(document), audit=audit,
                version=document.version, status=status, pdf=pdf_name, json=json_name, pdf_sha256=sha256,
                prepared_by=prepared_by, approved_by=approved_by, approved_at=approved_at, signature=signature,
            )
    except OSError as exc:
        _discard_unreferenced(written)
        raise ReportGenerationError(f"the report could not be written to {media_path(folder)}: "
                                    f"{describe_os_error(exc)}; nothing was issued",
                                    storage_full=exc.errno in (errno.ENOSPC, errno.EDQUOT)) from exc
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


# --- electronic signatures (21 CFR Part 11 / EU GMP Annex 11) ----------------------------------------------------

class SignatureRefused(PermissionError):
    """This user may not sign this report (role, four eyes) or did not prove who they are (password): 403."""


class SignatureInputError(ReportError):
    """Fields of the signature are missing or invalid: {field: problem}, every one named (400)."""

    def __init__(self, problems: dict[str, str]):
        super().__init__("; ".join(f"{field}: {problem}" for field, problem in problems.items()))
        self.problems = problems


def signing_refusal(report: Report, user) -> str | None:
    """Why `user` may not sign `report`, or None. The page hides the button when this is not None."""
    if report.prepared_by_id is not None and report.prepared_by_id == user.pk:
        return ("You prepared this report. A second person, an organisation admin who did not prepare it, must review "
                "and sign it (four eyes).")
    if role_in(user, report.audit.organisation_id) not in APPROVER_ROLES:
        return "Only an organisation admin may sign reports."
    return None


def signature_problems(password, meaning, reason) -> dict[str, str]:
    problems = {}
    if not isinstance(password, str) or not password:
        problems["password"] = "required: re-enter your password to sign"
    if not isinstance(meaning, str) or not meaning:
        problems["meaning"] = f"required: one of {', '.join(Signature.Meaning.values)}"
    elif meaning not in Signature.Meaning.values:
        problems["meaning"] = f"must be one of {', '.join(Signature.Meaning.values)}, not {meaning!r}"
    if not isinstance(reason, str) or not reason.strip():
        problems["reason"] = "required: say why you sign with this meaning"
    elif len(reason) > 2000:
        problems["reason"] = "at most 2000 characters"
    return problems


def failed_criteria(audit: Audit) -> list[str]:
    """The selected criteria that FAIL in the audit's stored results (what the signed version reports)."""
    return [row["name"] for row in evaluate_criteria(audit, results_of(audit))
            if row.get("enabled", True) and row["status"] == "FAIL"]


def _pdf_sha256(report: Report) -> str:
    digest = hashlib.sha256()
    with report.open_file("pdf") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sign_report(report: Report, user, *, password, meaning, reason) -> Report:
    """An electronic signature on the latest version: the signer re-enters their password and gives the meaning
    (reviewed, approved, rejected) and a reason. Recorded (append-only) with the UTC time and the SHA-256 of the PDF
    as it is on disk (checked against the recorded one), then a new version is issued whose sign-off section prints
    it; "approved" makes that version approved. A failing report can be approved: the failed criteria are recorded
    and printed beside the reason. Nothing is recorded when any check fails."""
    audit = report.audit
    refusal = signing_refusal(report, user)
    if refusal:
        raise SignatureRefused(refusal)
    problems = signature_problems(password, meaning, reason)
    if problems:
        raise SignatureInputError(problems)
    if authenticate(username=user.get_username(), password=password) != user:
        raise SignatureRefused("the password is not correct; nothing was signed")
    if report.status == Report.Status.APPROVED:
        raise ReportError("this version is already approved")
    if audit.status != Audit.Status.SUCCEEDED:
        raise ReportError(f"the audit is {audit.status}: only the report of a finished audit can be signed")
    with transaction.atomic():
        latest = audit.reports.select_for_update().order_by("-version").first()
        if latest.pk != report.pk:
            raise ReportError(f"only the latest version (v{latest.version}) can be signed")
        try:
            on_disk = _pdf_sha256(report)
        except OSError as exc:
            raise ReportError(f"the PDF of v{report.version} cannot be read ({describe_os_error(exc)}); nothing was "
                              "signed") from exc
        if on_disk != report.pdf_sha256:
            raise ReportError(f"the PDF of v{report.version} does not match its recorded SHA-256; nothing was signed")
        failed = failed_criteria(audit)
        now = timezone.now()
        signature = Signature.objects.create(
            report=report, signed_pdf_sha256=report.pdf_sha256, signer=user, signer_username=user.get_username(),
            signer_full_name=user.get_full_name(), signed_at=now, meaning=meaning, reason=reason.strip(),
            verdict="FAIL" if failed else "", failed_criteria=failed)
        approved = meaning == Signature.Meaning.APPROVED
        document = build_document(audit, version=report.version + 1, status="approved" if approved else "draft",
                                  prepared_by=report.prepared_by, approved_by=user if approved else None,
                                  approved_at=now if approved else None)
        return write_report(audit, document, prepared_by=report.prepared_by,
                            status=Report.Status.APPROVED if approved else Report.Status.DRAFT,
                            approved_by=user if approved else None, approved_at=now if approved else None,
                            signature=signature)


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
