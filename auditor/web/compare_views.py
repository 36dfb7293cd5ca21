"""Two audits of one organisation side by side, criterion by criterion (generator A vs B, or a run and its re-run)."""
from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render

from auditor.access import READ_ROLES
from auditor.reporting import format_number
from auditor.reporting.criteria import evaluate_criteria
from auditor.web.criteria_text import with_plain_language
from auditor.web.report_views import readable_audits
from auditor.web.views import _require


class CompareForm(forms.Form):
    a = forms.IntegerField(label="Audit A", widget=forms.Select)
    b = forms.IntegerField(label="Audit B", widget=forms.Select)

    def __init__(self, *args, audits, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(audit.pk, f"#{audit.pk} {audit.name} ({audit.status}, {audit.organisation.name})") for audit in audits]
        for name in ("a", "b"):
            self.fields[name].widget.choices = choices


def _difference(a: dict, b: dict) -> str:
    if isinstance(a.get("value"), (int, float)) and isinstance(b.get("value"), (int, float)):
        text = format_number(b["value"] - a["value"], 3)
        return text if text.startswith("-") or float(text) == 0 else f"+{text}"
    return "n/a"


def comparison_rows(rows_a: list[dict], rows_b: list[dict]) -> list[dict]:
    """One row per criterion of either audit (A's order first): both sides, B − A, and whether they are identical."""
    by_name_a, by_name_b = {row["name"]: row for row in rows_a}, {row["name"]: row for row in rows_b}
    names = list(by_name_a) + [name for name in by_name_b if name not in by_name_a]
    rows = []
    for name in names:
        a, b = by_name_a.get(name, {}), by_name_b.get(name, {})
        same = bool(a and b) and all(a.get(key) == b.get(key) for key in ("value", "ci", "status", "threshold"))
        rows.append({"name": name, "title": (a or b).get("title", name), "unit": (a or b).get("unit", ""),
                     "a": a, "b": b, "difference": _difference(a, b), "identical": same})
    return rows


@login_required
def audit_compare(request):
    _require(request.user, READ_ROLES)
    audits = readable_audits(request.user).select_related("organisation", "generated_set", "reference_set").order_by("-created_at")
    form = CompareForm(request.GET or None, audits=audits)
    context = {"form": form}
    if request.GET and form.is_valid():
        first = get_object_or_404(audits, pk=form.cleaned_data["a"])
        second = get_object_or_404(audits, pk=form.cleaned_data["b"])
        if first.organisation_id != second.organisation_id:
            form.add_error(None, "Choose two audits of the same organisation.")
        else:
            rows = comparison_rows(with_plain_language(evaluate_criteria(first)), with_plain_language(evaluate_criteria(second)))
            context.update({"first": first, "second": second, "rows": rows,
                            "n_identical": sum(row["identical"] for row in rows)})
    status = 400 if form.is_bound and form.errors else 200
    return render(request, "auditor/audit_compare.html", context, status=status)
