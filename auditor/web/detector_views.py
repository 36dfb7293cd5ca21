"""Web pages for synthetic-image detectors: list and train, watch a run, cancel it, score sets, read the scores."""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from auditor.access import READ_ROLES, WRITE_ROLES, can_write, organisation_ids
from auditor.detection.service import (
    ACTIVE_SCORING,
    ScoringError,
    create_detector_run,
    request_scoring,
    training_set_problems,
)
from auditor.models import DetectorRun, ImageScore, ImageSet
from auditor.models.training import ACTIVE_TRAINING
from auditor.web.views import _require

METRIC_ROWS = [
    ("ROC AUC", "roc_auc"), ("Average precision", "average_precision"), ("Accuracy at 0.5", "accuracy_at_0_5"),
    ("ECE before temperature scaling", "ece_before_scaling"), ("ECE after temperature scaling", "ece_after_scaling"),
]


class DetectorTrainForm(forms.Form):
    reference_set = forms.ModelChoiceField(queryset=ImageSet.objects.none(), help_text="real images")
    synthetic_sets = forms.ModelMultipleChoiceField(queryset=ImageSet.objects.none(), help_text="synthetic images (one or more sets)")
    minutes = forms.FloatField(min_value=0.05, max_value=24 * 60, initial=15, help_text="training time budget")
    max_epochs = forms.IntegerField(min_value=1, max_value=500, required=False, help_text="optional; default 40")
    seed = forms.IntegerField(initial=0)

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        sets = ImageSet.objects.filter(organisation_id__in=organisation_ids(user, WRITE_ROLES)).order_by("name")
        self.fields["reference_set"].queryset = sets.filter(kind=ImageSet.Kind.REFERENCE)
        self.fields["synthetic_sets"].queryset = sets.exclude(kind=ImageSet.Kind.REFERENCE)

    def clean(self):
        data = super().clean()
        if data.get("reference_set") and data.get("synthetic_sets") is not None:
            for field, problem in training_set_problems(data["reference_set"], list(data["synthetic_sets"])).items():
                self.add_error(field, problem)
        return data


class ScoreForm(forms.Form):
    image_set = forms.ModelChoiceField(queryset=ImageSet.objects.none(), label="Image set to score")

    def __init__(self, *args, run: DetectorRun, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["image_set"].queryset = ImageSet.objects.filter(organisation_id=run.organisation_id).order_by("name")


def _runs(user):
    return (DetectorRun.objects.filter(organisation_id__in=organisation_ids(user, READ_ROLES))
            .select_related("reference_set").prefetch_related("synthetic_sets"))


def _writable_run(request, pk: int, refusal: str) -> DetectorRun:
    _require(request.user, READ_ROLES)
    run = get_object_or_404(_runs(request.user), pk=pk)
    if not can_write(request.user, run.organisation_id):
        raise PermissionDenied(refusal)
    return run


@login_required
def detector_list(request):
    _require(request.user, READ_ROLES)
    writable = organisation_ids(request.user, WRITE_ROLES)
    form = DetectorTrainForm(request.POST or None, user=request.user)
    if request.method == "POST":
        if not writable:
            raise PermissionDenied("Your role cannot train detectors.")
        if form.is_valid():
            data = form.cleaned_data
            run = create_detector_run(data["reference_set"], list(data["synthetic_sets"]), minutes=data["minutes"],
                                      seed=data["seed"], max_epochs=data["max_epochs"], user=request.user)
            return redirect("web:detector-detail", pk=run.pk)
    return render(request, "auditor/detector_list.html", {
        "runs": _runs(request.user).order_by("-created_at", "-id"), "form": form, "can_create": bool(writable)})


def _metric_rows(metrics: dict) -> list[dict]:
    return [{"name": name, **metrics[key]} for name, key in METRIC_ROWS if isinstance(metrics.get(key), dict)]


@login_required
def detector_detail(request, pk: int):
    _require(request.user, READ_ROLES)
    run = get_object_or_404(_runs(request.user), pk=pk)
    evaluation = run.evaluation or {}
    scorings = list(run.scorings.select_related("image_set").order_by("-created_at", "-id"))
    return render(request, "auditor/detector_detail.html", {
        "run": run, "active": run.status in ACTIVE_TRAINING, "can_write": can_write(request.user, run.organisation_id),
        "overall": evaluation.get("overall"), "metric_rows": _metric_rows(evaluation.get("overall") or {}),
        "groups": evaluation.get("groups") or [], "robustness": sorted((evaluation.get("robustness_auc") or {}).items()),
        "training": evaluation.get("training") or {}, "temperature": evaluation.get("temperature"),
        "score_form": ScoreForm(run=run), "scorings": scorings,
        "scoring_active": any(s.status in ACTIVE_SCORING for s in scorings),
    })


@login_required
@require_POST
def detector_cancel(request, pk: int):
    run = _writable_run(request, pk, "Your role cannot cancel training runs.")
    if run.request_cancel():
        messages.info(request, "Cancellation requested; the run stops at its next progress report.")
    else:
        messages.error(request, f"This run has already finished ({run.status}).")
    return redirect("web:detector-detail", pk=pk)


@login_required
@require_POST
def detector_score(request, pk: int):
    run = _writable_run(request, pk, "Your role cannot score image sets.")
    form = ScoreForm(request.POST, run=run)
    if not form.is_valid():
        messages.error(request, f"Not scored: {form.errors.as_text()}")
        return redirect("web:detector-detail", pk=pk)
    try:
        scoring = request_scoring(run, form.cleaned_data["image_set"], user=request.user)
    except ScoringError as exc:
        messages.error(request, str(exc))
        return redirect("web:detector-detail", pk=pk)
    scoring.refresh_from_db()
    messages.info(request, f"Scoring {scoring.image_set.name}: {scoring.status}.")
    return redirect("web:detector-detail", pk=pk)


@login_required
def detector_scoring(request, pk: int, scoring_pk: int):
    """One scored set: its summary and the per-image probabilities, highest first, a page at a time."""
    _require(request.user, READ_ROLES)
    run = get_object_or_404(_runs(request.user), pk=pk)
    scoring = get_object_or_404(run.scorings.select_related("image_set"), pk=scoring_pk)
    rows = (ImageScore.objects.filter(detector=run, image__image_set=scoring.image_set).select_related("image")
            .order_by("-probability_synthetic", "image_id"))
    page = Paginator(rows, 50).get_page(request.GET.get("page"))
    return render(request, "auditor/detector_scoring.html", {"run": run, "scoring": scoring, "page": page})
