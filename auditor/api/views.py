from __future__ import annotations

from django.db import IntegrityError
from django.db.models import Count, ProtectedError
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle

from auditor.access import READ_ROLES, organisation_ids, readable_image_sets
from auditor.api.permissions import ImageSetRolePermission
from auditor.api.schema import MAX_ID, error_responses
from auditor.api.serializers import (
    CopyBaselineSerializer,
    ImageSerializer,
    ImageSetDetailSerializer,
    ImageSetSerializer,
    IngestErrorSerializer,
    IngestJobSerializer,
    UploadSerializer,
)
from auditor.generation.runs import make_copy_baseline
from auditor.ingestion.importer import delete_image_set
from auditor.ingestion.uploads import UploadStorageError, UploadTooLarge, received_files, stage_uploads, start_job
from auditor.models import Image, ImageSet, IngestError, IngestJob

IMAGE_SET_FILTER = OpenApiParameter("image_set", OpenApiTypes.INT, description="only this image set")


def _int_param(request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except ValueError:
        raise ValidationError({name: "must be an integer"}) from None
    if not -MAX_ID <= number <= MAX_ID:
        raise ValidationError({name: f"must be an integer id (at most {MAX_ID})"})
    return number


class LoginRateThrottle(ScopedRateThrottle):
    scope_attr = "throttle_scope"


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(read_only=True)


@extend_schema(auth=[], responses={200: TokenSerializer, **error_responses(429)})
class ObtainTokenView(ObtainAuthToken):
    """Exchange username/password for an API token (rate-limited per client address)."""

    throttle_classes = [LoginRateThrottle]
    throttle_scope = "login"


@extend_schema_view(list=extend_schema(parameters=[
    OpenApiParameter("kind", OpenApiTypes.STR, enum=[k for k, _ in ImageSet.Kind.choices]),
    OpenApiParameter("name", OpenApiTypes.STR, description="case-insensitive substring"),
    OpenApiParameter("organisation", OpenApiTypes.INT),
]))
class ImageSetViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                      mixins.UpdateModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    permission_classes = [ImageSetRolePermission]

    def get_queryset(self):
        # created_by: the serializer shows its username (one query per set without the join)
        queryset = readable_image_sets(self.request.user).annotate(image_count=Count("images")).select_related("created_by")
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
        image_set = serializer.save(created_by=self.request.user)
        image_set.image_count = 0  # what the list's annotation gives; the answer must carry every field

    @extend_schema(responses={204: None, **error_responses(409, e409="the set is an input of an audit or a training run")})
    def destroy(self, request, *args, **kwargs):
        instance = self.get_object()
        try:
            delete_image_set(instance)
        except ProtectedError as exc:
            users = sorted({str(obj) for obj in exc.protected_objects})[:5]
            return Response({"detail": f"image set {instance.name!r} is used by {', '.join(users)}; audits and training "
                                       "runs keep their inputs, so it cannot be deleted"}, status=status.HTTP_409_CONFLICT)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=CopyBaselineSerializer, responses={201: ImageSetSerializer, **error_responses(409)})
    @action(detail=True, methods=["post"], url_path="copy-baseline")
    def copy_baseline(self, request, pk=None):
        """Make a baseline set of this set's own images (a perfect memoriser) to prove the memorisation check."""
        reference = self.get_object()  # object permission: write roles of the set's organisation only
        payload = CopyBaselineSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            image_set = make_copy_baseline(reference, n=payload.validated_data.get("n"), seed=payload.validated_data["seed"],
                                           user=request.user)
        except IntegrityError:  # its name says n and seed: the same copy baseline exists already
            return Response({"detail": f"a copy baseline of {reference.name!r} with this n and seed exists already"},
                            status=status.HTTP_409_CONFLICT)
        image_set.image_count = image_set.images.count()
        return Response(ImageSetSerializer(image_set, context={"request": request}).data, status=status.HTTP_201_CREATED)

    @extend_schema(request={"multipart/form-data": UploadSerializer},
                   responses={202: IngestJobSerializer, **error_responses(413, 507)})
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser, FormParser])
    def upload(self, request, pk=None):
        """Upload image files and/or zip archives; they are imported by a background task (poll the job)."""
        image_set = self.get_object()
        try:
            files = received_files(request)
            if not files:
                raise ValidationError({"files": "send one or more files in the multipart field 'files'"})
            job = stage_uploads(image_set, files, request.user)
        except UploadTooLarge as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        except UploadStorageError as exc:
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


@extend_schema_view(list=extend_schema(parameters=[IMAGE_SET_FILTER]))
class ImageViewSet(ScopedByImageSetMixin, viewsets.ReadOnlyModelViewSet):
    model = Image
    serializer_class = ImageSerializer

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def file(self, request, pk=None):
        """The stored (normalised, content-addressed) image file."""
        image = self.get_object()  # an id that is not a number is a 404 too
        content_type = "image/jpeg" if image.file.endswith(".jpg") else "image/png"
        return FileResponse(open(image.path, "rb"), content_type=content_type)


@extend_schema_view(list=extend_schema(parameters=[IMAGE_SET_FILTER]))
class IngestErrorViewSet(ScopedByImageSetMixin, viewsets.ReadOnlyModelViewSet):
    model = IngestError
    serializer_class = IngestErrorSerializer


@extend_schema_view(list=extend_schema(parameters=[IMAGE_SET_FILTER]))
class IngestJobViewSet(ScopedByImageSetMixin, viewsets.ReadOnlyModelViewSet):
    model = IngestJob
    serializer_class = IngestJobSerializer
