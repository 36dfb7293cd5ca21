"""Web pages for the reference generators: start a training run from a set, watch it, cancel it, sample from it."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from auditor.access import READ_ROLES, can_write, organisation_ids
from auditor.generation.runs import GeneratorError, sample_to_image_set
from auditor.generation.tasks import train_generator_task
from auditor.models import GeneratorRun
from auditor.web.forms import SampleForm, TrainForm
from auditor.web.views import _require, readable_image_sets


def _runs(user):
    return GeneratorRun.objects.filter(organisation_id__in=organisation_ids(user, READ_ROLES)).select_related("reference_set")


@login_required
@require_POST
def start_training(request, pk: int):
    _require(request.user, READ_ROLES)
    reference = get_object_or_404(readable_image_sets(request.user), pk=pk)
    if not can_write(request.user, reference.organisation_id):
        raise PermissionDenied("Your role cannot start training runs.")
    form = TrainForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Training not started: {form.errors.as_text()}")
        return redirect("web:imageset-detail", pk=pk)
    data = form.cleaned_data
    run = GeneratorRun.objects.create(
        organisation=reference.organisation, created_by=request.user, kind=data["kind"], reference_set=reference,
        condition_label=data["condition_label"], seed=data["seed"], max_seconds=data["minutes"] * 60,
        config={"image_size": data["image_size"]},
    )
    transaction.on_commit(lambda: train_generator_task.delay(run.pk))
    return redirect("web:generator-detail", pk=run.pk)


@login_required
def generator_detail(request, pk: int):
    _require(request.user, READ_ROLES)
    run = get_object_or_404(_runs(request.user), pk=pk)
    return render(request, "auditor/generator_detail.html", {
        "run": run, "sample_form": SampleForm(), "can_write": can_write(request.user, run.organisation_id),
        "samples": run.reference_set.organisation.image_sets.filter(generator_weights_sha256=run.checkpoint_sha256)
        if run.checkpoint_sha256 else [],
    })


@login_required
@require_POST
def generator_cancel(request, pk: int):
    _require(request.user, READ_ROLES)
    run = get_object_or_404(_runs(request.user), pk=pk)
    if not can_write(request.user, run.organisation_id):
        raise PermissionDenied("Your role cannot cancel training runs.")
    run.request_cancel()
    messages.info(request, "Cancellation requested; the run stops at its next progress report.")
    return redirect("web:generator-detail", pk=pk)


@login_required
@require_POST
def generator_sample(request, pk: int):
    _require(request.user, READ_ROLES)
    run = get_object_or_404(_runs(request.user), pk=pk)
    if not can_write(request.user, run.organisation_id):
        raise PermissionDenied("Your role cannot sample.")
    form = SampleForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Not sampled: {form.errors.as_text()}")
        return redirect("web:generator-detail", pk=pk)
    try:
        image_set = sample_to_image_set(run, form.cleaned_data["n"], seed=form.cleaned_data["seed"], user=request.user)
    except GeneratorError as exc:
        messages.error(request, str(exc))
        return redirect("web:generator-detail", pk=pk)
    return redirect("web:imageset-detail", pk=image_set.pk)
