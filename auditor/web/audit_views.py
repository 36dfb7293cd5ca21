"""Web pages for audits: create (with criteria), run, watch progress, read results, download and approve reports."""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, SuspiciousFileOperation
from django.db import DatabaseError, transaction
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from auditor.access import READ_ROLES, WRITE_ROLES, can_write, organisation_ids
from auditor.audits import pipeline
from auditor.audits.tasks import run_audit_task
from auditor.models import Audit, ImageSet, Report, Signature
from auditor.models.audits import DEFAULT_CRITERIA
from auditor.reporting.criteria import evaluate_criteria, results_of
from auditor.models.trail import trail_of_audit
from auditor.reporting.issuing import (ReportError, ReportGenerationError, SignatureInputError, SignatureRefused,
                                      failed_criteria, sign_report, signing_refusal)
from auditor.web.criteria_text import plain, with_plain_language
from auditor.web.report_views import latest_report, load_twin, page_sections
from auditor.web.views import _require


class AuditForm(forms.ModelForm):
    class Meta:
        model = Audit
        fields = ["name", "generated_set", "reference_set", "training_set", "baseline_set", "include_copy_baseline", "seed"]

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        sets = ImageSet.objects.filter(organisation_id__in=organisation_ids(user, WRITE_ROLES))
        for name in ("generated_set", "reference_set", "training_set", "baseline_set"):
            self.fields[name].queryset = sets
        for name, spec in DEFAULT_CRITERIA.items():
            title = plain(name).get("title", name)
            bound = "at most" if spec["direction"] == "max" else "at least"
            self.fields[f"criterion_{name}"] = forms.FloatField(initial=spec["threshold"], label=f"{title}: {bound}",
                                                                help_text=spec["basis"])
            self.fields[f"enabled_{name}"] = forms.BooleanField(initial=spec["enabled"], required=False, label=f"Use “{title}”")

    def clean(self):
        data = super().clean()
        if data.get("generated_set") and data.get("reference_set") and data["generated_set"] == data["reference_set"]:
            raise forms.ValidationError("The generated and reference sets must differ.")
        return data

    def criteria(self) -> dict:
        return {name: {"threshold": self.cleaned_data[f"criterion_{name}"], "enabled": self.cleaned_data[f"enabled_{name}"]}
                for name in DEFAULT_CRITERIA}


def _audits(user):
    return Audit.objects.filter(organisation_id__in=organisation_ids(user, READ_ROLES))


@login_required
def audit_list(request):
    _require(request.user, READ_ROLES)
    writable = organisation_ids(request.user, WRITE_ROLES)
    form = AuditForm(request.POST or None, user=request.user)
    if request.method == "POST":
        if not writable:
            raise PermissionDenied("Your role cannot create audits.")
        if form.is_valid():
            audit = form.save(commit=False)
            audit.organisation = audit.generated_set.organisation
            audit.created_by = request.user
            audit.criteria = form.criteria()
            audit.save()
            return redirect("web:audit-detail", pk=audit.pk)
    return render(request, "auditor/audit_list.html", {"audits": _audits(request.user).select_related("generated_set", "reference_set"),
                                                        "form": form, "can_create": bool(writable)})


@login_required
def audit_detail(request, pk: int):
    _require(request.user, READ_ROLES)
    audit = get_object_or_404(_audits(request.user).select_related("generated_set", "reference_set"), pk=pk)
    results = results_of(audit)
    criteria = with_plain_language(evaluate_criteria(audit, results))
    effective = audit.effective_criteria()
    for row in criteria:
        row.setdefault("enabled", effective.get(row["name"], {}).get("enabled", True))
    report = latest_report(audit)
    twin = load_twin(report) if report else None
    return render(request, "auditor/audit_detail.html", {
        "audit": audit, "progress": pipeline.progress(audit), "criteria": criteria, "evaluated": audit.status != Audit.Status.DRAFT,
        "reports": audit.reports.select_related("prepared_by", "approved_by", "signature__report"), "stages_done": sorted(results),
        "can_write": can_write(request.user, audit.organisation_id),
        # The sign button only for someone who may sign (an admin who did not prepare it), on the latest draft.
        "can_sign": bool(report and report.status == Report.Status.DRAFT and audit.status == Audit.Status.SUCCEEDED
                         and signing_refusal(report, request.user) is None),
        "trail": trail_of_audit(audit),
        "report": report, "twin": twin, "sections": page_sections(report, twin, criteria, results) if twin else [],
        "others": _audits(request.user).filter(organisation_id=audit.organisation_id).exclude(pk=audit.pk)[:50],
    })


@login_required
@require_POST
def audit_run(request, pk: int):
    _require(request.user, READ_ROLES)
    audit = get_object_or_404(_audits(request.user), pk=pk)
    if not can_write(request.user, audit.organisation_id):
        raise PermissionDenied("Your role cannot run audits.")
    try:
        with transaction.atomic():
            pipeline.start_audit(audit, enqueue=lambda audit_id: run_audit_task.delay(audit_id))
    except pipeline.AuditConfigurationError as exc:
        messages.error(request, str(exc))
    return redirect("web:audit-detail", pk=pk)


@login_required
def report_download(request, pk, which: str):
    _require(request.user, READ_ROLES)
    report = get_object_or_404(Report.objects.filter(audit__in=_audits(request.user)), pk=pk)
    try:
        file = report.open_file(which)  # by storage name, through the default storage
    except (OSError, SuspiciousFileOperation):
        raise Http404(f"This report's {which.upper()} file cannot be read.") from None
    return FileResponse(file, as_attachment=True, filename=f"dermaudit-audit{report.audit_id}-v{report.version}.{which}",
                        content_type="application/pdf" if which == "pdf" else "application/json")


class SignatureForm(forms.Form):
    meaning = forms.ChoiceField(choices=Signature.Meaning.choices, widget=forms.RadioSelect,
                                label="What your signature means")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "maxlength": 2000}), max_length=2000,
                             label="Reason", help_text="Printed in the report beside your signature.")
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
                               label="Your password", help_text="Entered again: it identifies you as the signer.")


@login_required
def report_approve(request, pk):
    """Sign a report version electronically (GET: the form; POST: sign). Who may not sign gets a page that says why."""
    _require(request.user, READ_ROLES)
    report = get_object_or_404(Report.objects.filter(audit__in=_audits(request.user)).select_related("audit", "prepared_by"),
                               pk=pk)
    refusal = signing_refusal(report, request.user)
    if refusal:
        return render(request, "auditor/signature_refused.html", {"report": report, "refusal": refusal}, status=403)
    form = SignatureForm(request.POST if request.method == "POST" else None)  # an empty POST is bound too
    status_code = 200
    if request.method == "POST":
        form.is_valid()  # field errors beside their fields; sign_report decides
        try:
            issued = sign_report(report, request.user, password=request.POST.get("password", ""),
                                 meaning=request.POST.get("meaning", ""), reason=request.POST.get("reason", ""))
        except SignatureRefused as exc:  # the password (role and four eyes were checked above)
            form.add_error("password", str(exc))
            status_code = 403
        except SignatureInputError as exc:
            for field, problem in exc.problems.items():
                if not form.has_error(field):
                    form.add_error(field, problem)
            status_code = 400
        except ReportGenerationError as exc:
            form.add_error(None, str(exc))
            status_code = 507 if exc.storage_full else 500
        except ReportError as exc:
            form.add_error(None, str(exc))
            status_code = 400
        except DatabaseError as exc:
            form.add_error(None, f"the signature could not be recorded (database error: {exc}); nothing was signed, "
                                 "try again")
            status_code = 503
        else:
            signature = issued.signature
            messages.info(request, f"Signed v{report.version} ({signature.meaning}); issued as version {issued.version}.")
            return redirect("web:audit-detail", pk=report.audit_id)
    return render(request, "auditor/report_sign.html", {
        "report": report, "audit": report.audit, "form": form, "failed": failed_criteria(report.audit),
        "signatures": Signature.objects.filter(report__audit=report.audit).select_related("report"),
    }, status=status_code)
