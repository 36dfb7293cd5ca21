"""Images on the web: a set's thumbnail grid with filters, one image's page, and the thumbnails themselves.

Readers never reach any of these (they rate blinded cases only): every view starts with the READ_ROLES check, and
another organisation's image is not found.
"""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.http import FileResponse, Http404, HttpResponseNotModified
from django.shortcuts import get_object_or_404, render

from auditor.access import READ_ROLES, organisation_ids
from auditor.models import DetectorScoring, DuplicateRecord, Image, ImageScore, ImageSet
from auditor.web.forms import UNLABELLED, ImageFilterForm
from auditor.web.thumbnails import PAGE_SIZE, ROMAN, SIZES, display_size, grid_cells, thumbnail_for

IMAGES_PER_PAGE = 48
THUMBNAIL_CACHE = "private, max-age=31536000, immutable"  # an image row's bytes never change (content-addressed)


def readable_organisations(user) -> list[int]:
    """The organisations whose images `user` may see; none at all (a reader) is refused outright."""
    organisations = organisation_ids(user, READ_ROLES)
    if not organisations:
        raise PermissionDenied("Your role does not give access to image sets.")
    return organisations


def readable_images(user) -> QuerySet[Image]:
    return Image.objects.filter(image_set__organisation_id__in=readable_organisations(user))


def label_counts(image_set: ImageSet) -> dict[str, dict[str, int]]:
    """ImageSet.label_counts, counted by the database (one GROUP BY over the label combinations, not every row)."""
    fields = ("diagnosis", "fitzpatrick", "acquisition")
    counts: dict[str, dict[str, int]] = {field: {} for field in fields}
    for *values, n in image_set.images.order_by().values_list(*fields).annotate(n=Count("id")):
        for field, value in zip(fields, values):
            key = "unlabelled" if value in ("", None) else str(value)
            counts[field][key] = counts[field].get(key, 0) + n
    return counts


def _scorings(image_set: ImageSet) -> list[DetectorScoring]:
    return list(image_set.detector_scorings.filter(status=DetectorScoring.Status.SUCCEEDED)
                .select_related("detector").order_by("-created_at", "-id"))


def _filtered(image_set: ImageSet, data: dict) -> QuerySet[Image]:
    images = image_set.images.all()
    for name in ("diagnosis", "acquisition"):
        if data.get(name) == UNLABELLED:
            images = images.filter(**{name: ""})
        elif data.get(name):
            images = images.filter(**{name: data[name]})
    if data.get("fitzpatrick") == UNLABELLED:
        images = images.filter(fitzpatrick__isnull=True)
    elif data.get("fitzpatrick"):
        images = images.filter(fitzpatrick=int(data["fitzpatrick"]))
    if data.get("detector"):
        score = ImageScore.objects.filter(detector_id=data["detector"], image=OuterRef("pk")).values("probability_synthetic")[:1]
        images = images.annotate(p_synthetic=Subquery(score))
        if data.get("p_min") is not None:
            images = images.filter(p_synthetic__gte=data["p_min"])
        if data.get("p_max") is not None:
            images = images.filter(p_synthetic__lte=data["p_max"])
        if data.get("order") == "score-desc":
            return images.order_by("-p_synthetic", "id")
        if data.get("order") == "score-asc":
            return images.order_by("p_synthetic", "id")
    return images.order_by("id")


@login_required
def imageset_images(request, pk: int):
    image_set = get_object_or_404(ImageSet.objects.filter(organisation_id__in=readable_organisations(request.user)), pk=pk)
    scorings = _scorings(image_set)
    data = request.GET.copy()
    if "detector" not in data and scorings:  # first visit: the latest detector that scored this set
        data["detector"] = str(scorings[0].detector_id)
    detectors = [(s.detector_id, f"run #{s.detector_id} (scored {s.created_at:%Y-%m-%d})") for s in scorings]
    counts = label_counts(image_set)
    form = ImageFilterForm(data, counts=counts, detectors=detectors)
    valid = form.is_valid()
    filters = form.cleaned_data if valid else {}
    images = _filtered(image_set, filters) if valid else image_set.images.none()
    page = Paginator(images, IMAGES_PER_PAGE).get_page(request.GET.get("page"))
    query = data.copy()
    query.pop("page", None)
    return render(request, "auditor/imageset_images.html", {
        "set": image_set, "form": form, "page": page, "cells": grid_cells(page, filters.get("detector")),
        "query": query.urlencode(), "total": sum(counts["diagnosis"].values()),
    }, status=200 if valid else 400)


@login_required
def image_detail(request, pk: int):
    image = get_object_or_404(readable_images(request.user).select_related("image_set"), pk=pk)
    siblings = image.image_set.images.order_by("id")
    width, height = display_size(image.width, image.height, PAGE_SIZE // 2)
    return render(request, "auditor/image_detail.html", {
        "image": image, "set": image.image_set, "page_size": PAGE_SIZE, "width": width, "height": height,
        "fitzpatrick": ROMAN.get(image.fitzpatrick), "estimate": ROMAN.get(image.fitzpatrick_estimate),
        "scores": image.detector_scores.select_related("detector").order_by("-detector__created_at", "-detector_id"),
        "duplicate_files": DuplicateRecord.objects.filter(duplicate_of=image).select_related("job"),
        "same_picture": readable_images(request.user).filter(pixel_sha256=image.pixel_sha256).exclude(pk=image.pk)
                                                      .select_related("image_set")[:50],
        "previous": siblings.filter(id__lt=image.pk).order_by("-id").only("id").first(),
        "next": siblings.filter(id__gt=image.pk).only("id").first(),
    })


@login_required
def image_thumbnail(request, pk: int, size: int):
    # One query on the common path: the image, if one of the user's reading roles covers its organisation. Only when
    # there is none is it worth telling a reader (403) from another organisation's image or a wrong size (404).
    image = Image.objects.filter(pk=pk, image_set__organisation__memberships__user=request.user,
                                 image_set__organisation__memberships__role__in=list(READ_ROLES)).only("sha256", "file").first()
    if image is None or size not in SIZES:
        readable_organisations(request.user)
        raise Http404("No such thumbnail.")
    etag = f'"{image.sha256[:32]}-{size}"'
    if etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]:
        response = HttpResponseNotModified()
    else:
        response = FileResponse(open(thumbnail_for(image, size), "rb"), content_type="image/jpeg")
    response["ETag"] = etag
    response["Cache-Control"] = THUMBNAIL_CACHE
    return response
