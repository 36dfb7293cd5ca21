"""Server-rendered pages: image sets, upload with progress, ingest errors."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from auditor.access import READ_ROLES, WRITE_ROLES, can_write, has_any_role, organisation_ids, readable_image_sets
from auditor.ingestion.uploads import UploadStorageError, UploadTooLarge, received_files, stage_uploads, start_job
from auditor.models import IngestJob, Organisation
from auditor.web.forms import ImageSetForm, TrainForm
from auditor.web.thumbnails import grid_cells


def _require(user, roles) -> None:
    if not has_any_role(user, roles):
        raise PermissionDenied("Your role does not give access to image sets.")


@login_required
def home(request):
    if has_any_role(request.user, READ_ROLES):
        return redirect("web:imageset-list")
    return redirect("reader_study:home") if _has_reader_pages() else render(request, "auditor/no_access.html")


def _has_reader_pages() -> bool:
    from django.urls import NoReverseMatch, reverse

    try:
        reverse("reader_study:home")
        return True
    except NoReverseMatch:
        return False


@login_required
def imageset_list(request):
    _require(request.user, READ_ROLES)
    sets = readable_image_sets(request.user).annotate(image_count=Count("images")).select_related("organisation")
    writable = organisation_ids(request.user, WRITE_ROLES)
    form = ImageSetForm(request.POST or None)
    if request.method == "POST":
        if not writable:
            raise PermissionDenied("Your role cannot create image sets.")
        if form.is_valid():
            image_set = form.save(commit=False)
            image_set.organisation = Organisation.objects.get(pk=writable[0])
            image_set.created_by = request.user
            try:
                with transaction.atomic():
                    image_set.save()
            except IntegrityError:
                form.add_error("name", "An image set with this name already exists.")
            else:
                return redirect("web:imageset-detail", pk=image_set.pk)
    return render(request, "auditor/imageset_list.html", {"sets": sets, "form": form, "can_create": bool(writable)})


@login_required
def imageset_detail(request, pk: int):
    _require(request.user, READ_ROLES)
    image_set = get_object_or_404(readable_image_sets(request.user), pk=pk)
    context = {
        "set": image_set,
        "counts": image_set.label_counts(),
        "image_count": image_set.images.count(),
        "preview": grid_cells(image_set.images.order_by("id")[:12]),
        "errors": image_set.ingest_errors.all()[:500],
        "duplicates": image_set.duplicate_records.select_related("duplicate_of")[:500],
        "jobs": image_set.ingest_jobs.all()[:10],
        "can_upload": can_write(request.user, image_set.organisation_id),
        "generator_runs": image_set.generator_runs.all()[:20],
        "train_form": TrainForm(),
    }
    return render(request, "auditor/imageset_detail.html", context)


@login_required
@require_POST
def imageset_upload(request, pk: int):
    _require(request.user, READ_ROLES)
    image_set = get_object_or_404(readable_image_sets(request.user), pk=pk)
    if not can_write(request.user, image_set.organisation_id):
        raise PermissionDenied("Your role cannot upload.")
    try:
        files = received_files(request)
        if not files:
            return JsonResponse({"detail": "Choose one or more files."}, status=400)
        job = stage_uploads(image_set, files, request.user)
    except UploadTooLarge as exc:
        return JsonResponse({"detail": str(exc)}, status=413)
    except UploadStorageError as exc:
        return JsonResponse({"detail": str(exc)}, status=507)
    start_job(job)
    messages.info(request, f"Import started: {job.source}")
    return JsonResponse({"job": str(job.pk), "status_url": reverse("web:job-status", args=[job.pk])}, status=202)


@login_required
def job_status(request, job_id):
    _require(request.user, READ_ROLES)
    job = get_object_or_404(IngestJob.objects.filter(image_set__in=readable_image_sets(request.user)), pk=job_id)
    return JsonResponse({
        "status": job.status, "total": job.total, "processed": job.processed, "imported": job.imported,
        "duplicates": job.duplicates, "failed": job.failed, "message": job.message,
    })
