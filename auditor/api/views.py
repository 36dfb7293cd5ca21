from __future__ import annotations

from django.db.models import Count, ProtectedError
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle

from ..access import READ_ROLES, organisation_ids, readable_image_sets
from ..generators import make_copy_baseline
from ..importer import delete_image_set
from ..models import Image, ImageSet, IngestError, IngestJob
from ..uploads import UploadTooLarge, stage_uploads, start_job
from .permissions import ImageSetRolePermission
from .serializers import (
    CopyBaselineSerializer,
    ImageSerializer,
    ImageSetDetailSerializer,
    ImageSetSerializer,
    IngestErrorSerializer,
    IngestJobSerializer,
    UploadSerializer,
)

IMAGE_SET_FILTER = OpenApiParameter("image_set", OpenApiTypes.INT, description="only this image set")


def _int_param(request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise ValidationError({name: "must be an integer"}) from None


class LoginRateThrottle(ScopedRateThrottle):
    scope_attr = "throttle_scope"


class ObtainTokenView(ObtainAuthToken):
    """Exchange username/password for an API token (rate-limited per client address)."""

    throttle_classes = [LoginRateThrottle]
    throttle_scope = "login"


@extend_schema(parameters=[
    OpenApiParameter("kind", OpenApiTypes.STR, enum=[k for k, _ in ImageSet.Kind.choices]),
    OpenApiParameter("name", OpenApiTypes.STR, description="case-insensitive substring"),
    OpenApiParameter("organisation", OpenApiTypes.INT),
])
class ImageSetViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                      mixins.UpdateModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    permission_classes = [ImageSetRolePermission]

    def get_queryset(self):
        queryset = readable_image_sets(self.request.user).annotate(image_count=Count("images"))
        if kind := self.request.query_params.get("kind"):
            queryset = queryset.filter(kind=kind)
        if name := self.request.query_params.get("name"):
            queryset = queryset.filter(name__icontains=name)
        if (organisation := _int_param(self.request, "organisation")) is not None:
            queryset = queryset.filter(organisation_id=organisation)
        return queryset.order_by("-created_at", "-id")

    def get_serializer_class(self):
        if self.action == "upload":
            return UploadSerializer
        return ImageSetDetailSerializer if self.action == "retrieve" else ImageSetSerializer

    def perform_create(self, serializer):
        serializer.save(created_by=self.request.user)

    def destroy(self, request, *args, **kwargs):
        instance = self.get_object()
        try:
            delete_image_set(instance)
        except ProtectedError as exc:
            users = sorted({str(obj) for obj in exc.protected_objects})[:5]
            return Response({"detail": f"image set {instance.name!r} is used by {', '.join(users)}; audits and training "
                                       "runs keep their inputs, so it cannot be deleted"}, status=status.HTTP_409_CONFLICT)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=CopyBaselineSerializer, responses={201: ImageSetSerializer})
    @action(detail=True, methods=["post"], url_path="copy-baseline")
    def copy_baseline(self, request, pk=None):
        """Make a baseline set of this set's own images (a perfect memoriser) to prove the memorisation check."""
        reference = self.get_object()  # object permission: write roles of the set's organisation only
        payload = CopyBaselineSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        image_set = make_copy_baseline(reference, n=payload.validated_data.get("n"), seed=payload.validated_data["seed"], user=request.user)
        image_set.image_count = image_set.images.count()
        return Response(ImageSetSerializer(image_set, context={"request": request}).data, status=status.HTTP_201_CREATED)

    @extend_schema(request={"multipart/form-data": UploadSerializer}, responses={202: IngestJobSerializer})
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser, FormParser])
    def upload(self, request, pk=None):
        """Upload image files and/or zip archives; they are imported by a background task (poll the job)."""
        image_set = self.get_object()
        files = request.FILES.getlist("files")
        if not files:
            raise ValidationError({"files": "send one or more files in the multipart field 'files'"})
        try:
            job = stage_uploads(image_set, files, request.user)
        except UploadTooLarge as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        except OSError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_507_INSUFFICIENT_STORAGE)
        start_job(job)
        job.refresh_from_db()
        return Response(IngestJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ScopedByImageSetMixin:
    permission_classes = [ImageSetRolePermission]
    model = None

    def get_queryset(self):
        queryset = self.model.objects.filter(image_set__organisation_id__in=organisation_ids(self.request.user, READ_ROLES))
        if (image_set := _int_param(self.request, "image_set")) is not None:
            queryset = queryset.filter(image_set_id=image_set)
        return queryset.order_by(*self.model._meta.ordering)


@extend_schema(parameters=[IMAGE_SET_FILTER])
class ImageViewSet(ScopedByImageSetMixin, viewsets.ReadOnlyModelViewSet):
    model = Image
    serializer_class = ImageSerializer

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def file(self, request, pk=None):
        """The stored (normalised, content-addressed) image file."""
        image = get_object_or_404(self.get_queryset(), pk=pk)
        content_type = "image/jpeg" if image.file.endswith(".jpg") else "image/png"
        return FileResponse(open(image.path, "rb"), content_type=content_type)


@extend_schema(parameters=[IMAGE_SET_FILTER])
class IngestErrorViewSet(ScopedByImageSetMixin, viewsets.ReadOnlyModelViewSet):
    model = IngestError
    serializer_class = IngestErrorSerializer


@extend_schema(parameters=[IMAGE_SET_FILTER])
class IngestJobViewSet(ScopedByImageSetMixin, viewsets.ReadOnlyModelViewSet):
    model = IngestJob
    serializer_class = IngestJobSerializer
