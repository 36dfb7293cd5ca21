"""Web pages for audits: create (with criteria), run, watch progress, read results, download and approve reports."""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import FileResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from auditor.access import READ_ROLES, WRITE_ROLES, can_write, organisation_ids
from auditor.audits import pipeline
from auditor.audits.tasks import run_audit_task
from auditor.models import Audit, ImageSet, Report
from auditor.models.audits import DEFAULT_CRITERIA
from auditor.reporting.criteria import evaluate_criteria, results_of
from auditor.reporting.issuing import ReportError, approve_report
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
        "reports": audit.reports.select_related("prepared_by", "approved_by"), "stages_done": sorted(results),
        "can_write": can_write(request.user, audit.organisation_id),
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
    path = report.pdf if which == "pdf" else report.json
    return FileResponse(open(path, "rb"), as_attachment=True, filename=f"dermaudit-audit{report.audit_id}-v{report.version}.{which}",
                        content_type="application/pdf" if which == "pdf" else "application/json")


@login_required
@require_POST
def report_approve(request, pk):
    _require(request.user, READ_ROLES)
    report = get_object_or_404(Report.objects.filter(audit__in=_audits(request.user)), pk=pk)
    try:
        approved = approve_report(report, request.user)
        messages.info(request, f"Approved as version {approved.version}.")
    except PermissionError as exc:
        raise PermissionDenied(str(exc)) from None
    except ReportError as exc:
        messages.error(request, str(exc))
    return redirect("web:audit-detail", pk=report.audit_id)
