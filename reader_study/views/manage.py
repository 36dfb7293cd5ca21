"""Pages for those who run studies: list, design, detail (status, readers), results."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from auditor.access import WRITE_ROLES, organisation_ids
from auditor.models import ImageSet

from .. import access, services
from ..forms import InviteForm, StudyDesignForm
from ..models import Study


def _require_manager(user) -> None:
    if not access.is_manager(user):
        raise PermissionDenied("Your role does not give access to study management.")


def _study(request, pk: int) -> Study:
    _require_manager(request.user)
    return get_object_or_404(access.managed_studies(request.user), pk=pk)


def _require_change(user, study: Study) -> None:
    if not access.can_change(user, study):
        raise PermissionDenied("Your role cannot change studies.")


@login_required
def study_list(request):
    _require_manager(request.user)
    studies = (access.managed_studies(request.user).select_related("organisation")
               .annotate(case_count=Count("cases", distinct=True), reader_count=Count("assignments", distinct=True)))
    return render(request, "reader_study/study_list.html",
                  {"studies": studies, "can_create": access.can_create(request.user)})


@login_required
def study_create(request):
    _require_manager(request.user)
    if not access.can_create(request.user):
        raise PermissionDenied("Your role cannot create studies.")
    image_sets = list(
        ImageSet.objects.filter(organisation_id__in=organisation_ids(request.user, WRITE_ROLES))
        .annotate(image_count=Count("images")).filter(image_count__gt=0).order_by("kind", "name")
    )
    form = StudyDesignForm(request.POST or None, image_sets=image_sets)
    if request.method == "POST" and form.is_valid():
        chosen = form.cleaned_data["chosen_sets"]
        if not chosen:
            form.add_error(None, "give a count for at least one generated and one reference set")
        else:
            try:
                study = services.create_study(chosen[0].organisation, form.design(), created_by=request.user)
            except services.StudyError as exc:
                form.add_error(None, str(exc))
            else:
                messages.info(request, f"Study created with {study.cases.count()} cases. Invite readers, then open it.")
                return redirect("reader_study:study-detail", pk=study.pk)
    return render(request, "reader_study/study_form.html", {"form": form}, status=400 if form.errors else 200)


@login_required
def study_detail(request, pk: int):
    study = _study(request, pk)
    can_change = access.can_change(request.user, study)
    invited = study.assignments.values_list("reader_id", flat=True)
    eligible = services.eligible_readers(study.organisation).exclude(pk__in=invited)
    return render(request, "reader_study/study_detail.html", {
        "study": study, "arms": study.arms.annotate(case_count=Count("cases")),
        "readers": services.reader_progress_table(study), "can_change": can_change,
        "invite_form": InviteForm(eligible=eligible) if can_change and not study.is_closed else None,
        "can_see_interim": access.can_see_interim(request.user, study),
    })


@login_required
@require_POST
def study_status(request, pk: int):
    study = _study(request, pk)
    _require_change(request.user, study)
    try:
        study = services.change_status(study, request.POST.get("action", ""))
    except services.StudyError as exc:
        messages.error(request, str(exc))
    else:
        messages.info(request, f"The study is now {study.status}.")
    return redirect("reader_study:study-detail", pk=study.pk)


@login_required
@require_POST
def study_invite(request, pk: int):
    study = _study(request, pk)
    _require_change(request.user, study)
    form = InviteForm(request.POST, eligible=services.eligible_readers(study.organisation))
    if form.is_valid():
        try:
            services.invite_readers(study, form.cleaned_data["readers"], invited_by=request.user)
        except services.StudyError as exc:
            messages.error(request, str(exc))
    else:
        messages.error(request, "Choose one or more readers.")
    return redirect("reader_study:study-detail", pk=study.pk)


@login_required
def study_results(request, pk: int):
    """Statistics after close; quality/admin may look at an explicitly labelled interim view before."""
    from ..results import interim_results, stored_results  # pandas/scipy load only for results, not for readers

    study = _study(request, pk)
    if study.is_closed:
        payload = stored_results(study).payload
    elif request.GET.get("interim") == "1" and access.can_see_interim(request.user, study):
        payload = interim_results(study)
    elif request.GET.get("interim") == "1":
        raise PermissionDenied("Interim results are for quality and admin roles.")
    else:
        return render(request, "reader_study/results_not_ready.html", {"study": study}, status=409)
    return render(request, "reader_study/study_results.html",
                  {"study": study, "r": payload})
