"""The reader's pages: landing page, profile, and the reading page (one case at a time, resumable).

Blinding rule for everything rendered here: the page of a case is built only from the showing's token, its
position and the study's questions, never from the case, its image or its arm.
"""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache

from .. import access, services
from ..forms import ReaderProfileForm
from ..models import Answer, Assignment, ReaderProfile, Showing, Study
from ..serializers import questions_of

FIVE_POINT_LABELS = ["1 · guess", "2", "3", "4", "5 · certain"]
QUALITY_KEYS = "ZXCVB"  # bottom row, left to right = quality 1 (poor) … 5 (excellent)


def _page(request, template: str, context: dict, status: int = 200):
    return render(request, template, {**context, "reader_nav": True}, status=status)


def _require_reader(user) -> None:
    if not access.is_reader(user):
        raise PermissionDenied("This page is for readers.")


def _own_feedback(assignment: Assignment) -> dict | None:
    """After close only: how often the reader was right on their first showings (never before close)."""
    if not assignment.study.is_closed or not assignment.study.ask_call:
        return None
    answers = Answer.objects.filter(showing__assignment=assignment, showing__number=1,
                                    called_synthetic__isnull=False).select_related("showing__case")
    total = len(answers)
    correct = sum(a.called_synthetic == a.showing.case.truth_synthetic for a in answers)
    return {"correct": correct, "total": total}


@login_required
def home(request):
    if not access.is_reader(request.user):
        if access.is_manager(request.user):
            return redirect("reader_study:study-list")
        raise PermissionDenied("This page is for readers.")
    rows = []
    for assignment in access.own_assignments(request.user).select_related("study").order_by("-invited_at"):
        rows.append({"assignment": assignment, "progress": services.progress(assignment),
                     "feedback": _own_feedback(assignment)})
    has_profile = ReaderProfile.objects.filter(user=request.user).exists()
    return _page(request, "reader_study/home.html", {"rows": rows, "has_profile": has_profile})


@login_required
def profile(request):
    _require_reader(request.user)
    instance = ReaderProfile.objects.filter(user=request.user).first()
    form = ReaderProfileForm(request.POST or None, instance=instance)
    if request.method == "POST" and form.is_valid():
        saved = form.save(commit=False)
        saved.user = request.user
        saved.save()
        next_url = request.GET.get("next", "")
        return redirect(next_url if next_url.startswith("/studies/") else "reader_study:home")
    return _page(request, "reader_study/profile.html", {"form": form})


def _case_context(study: Study, showing: Showing, progress: services.Progress, *, values=None, errors=None,
                  revisiting: bool = False) -> dict:
    previous = services.previous_showing(showing) if study.allow_changes else None
    return {
        "study": study, "showing": showing, "progress": progress, "questions": questions_of(study),
        "image_url": reverse("readercase-image", args=[showing.token]),
        "five_point_labels": list(zip(range(1, 6), FIVE_POINT_LABELS)),
        "quality_options": list(zip(range(1, 6), QUALITY_KEYS)),
        "values": values or {}, "errors": errors or {}, "revisiting": revisiting,
        "previous_url": reverse("reader_study:revisit", args=[study.pk, previous.token]) if previous else "",
    }


def _status_page(request, assignment: Assignment, progress: services.Progress):
    return _page(request, "reader_study/status.html", {
        "study": assignment.study, "progress": progress, "feedback": _own_feedback(assignment),
        "last": services.last_answered_showing(assignment) if assignment.study.allow_changes else None,
    })


@never_cache
@login_required
def read(request, study_id: int):
    """GET: the next unanswered case (or where the study stands). POST: answer a case, then PRG to the next."""
    _require_reader(request.user)
    assignment = get_object_or_404(access.own_assignments(request.user).select_related("study"), study_id=study_id)
    study = assignment.study
    if not ReaderProfile.objects.filter(user=request.user).exists():
        return redirect(f"{reverse('reader_study:profile')}?next={request.path}")
    if request.method == "POST":
        showing = get_object_or_404(Showing, assignment=assignment, token=request.POST.get("token", ""))
        showing.assignment = assignment  # already loaded, with its study
        try:
            services.submit_answer(showing, services.parse_answer(study, request.POST))
        except services.AnswerInvalid as exc:
            context = _case_context(study, showing, services.progress(assignment), values=request.POST, errors=exc.errors)
            return _page(request, "reader_study/read.html", context, status=400)
        except services.StudyError:
            pass  # paused or closed meanwhile: the GET below says so
        return redirect("reader_study:read", study_id=study.pk)

    progress = services.progress(assignment)
    showing = services.next_showing(assignment) if study.status == Study.Status.OPEN else None
    if showing is None:
        return _status_page(request, assignment, progress)
    services.mark_served(showing)
    return _page(request, "reader_study/read.html", _case_context(study, showing, progress))


@never_cache
@login_required
def revisit(request, study_id: int, token: str):
    """Change an earlier answer (only in studies that allow changes, only while open)."""
    _require_reader(request.user)
    assignment = get_object_or_404(access.own_assignments(request.user).select_related("study"), study_id=study_id)
    study = assignment.study
    showing = get_object_or_404(Showing.objects.select_related("answer"), assignment=assignment, token=token)
    if not study.allow_changes or study.status != Study.Status.OPEN or not hasattr(showing, "answer"):
        return redirect("reader_study:read", study_id=study.pk)
    progress = services.progress(assignment)
    if request.method == "POST":
        try:
            services.change_answer(showing, services.parse_answer(study, request.POST))
        except services.AnswerInvalid as exc:
            context = _case_context(study, showing, progress, values=request.POST, errors=exc.errors, revisiting=True)
            return _page(request, "reader_study/read.html", context, status=400)
        except services.StudyError:
            pass
        return redirect("reader_study:read", study_id=study.pk)
    answer = showing.answer
    values = {
        "call": "" if answer.called_synthetic is None else ("synthetic" if answer.called_synthetic else "real"),
        "confidence": "" if answer.confidence is None else str(answer.confidence),
        "quality": "" if answer.quality is None else str(answer.quality),
        "diagnosis": answer.diagnosis,
    }
    return _page(request, "reader_study/read.html", _case_context(study, showing, progress, values=values, revisiting=True))
