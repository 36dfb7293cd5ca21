"""API for synthetic-image detectors: train (a Celery task), poll, cancel, score image sets, read the scores."""
from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from auditor.access import READ_ROLES, WRITE_ROLES, organisation_ids
from auditor.api.permissions import ImageSetRolePermission
from auditor.api.views import _int_param
from auditor.detection.service import ScoringError, create_detector_run, request_scoring, training_set_problems
from auditor.models import DetectorRun, DetectorScoring, ImageScore, ImageSet


def _writable_sets(request):
    # Other organisations' sets look exactly like ids that do not exist.
    return ImageSet.objects.filter(organisation_id__in=organisation_ids(request.user, WRITE_ROLES) if request else [])


class DetectorRunSerializer(serializers.ModelSerializer):
    reference_set = serializers.PrimaryKeyRelatedField(queryset=ImageSet.objects.none(), help_text="the real images")
    synthetic_sets = serializers.PrimaryKeyRelatedField(many=True, queryset=ImageSet.objects.none(),
                                                        help_text="one or more sets of synthetic images")
    minutes = serializers.FloatField(write_only=True, min_value=0.05, max_value=24 * 60,
                                     help_text="wall-clock training budget (evaluation and saving come on top)")
    max_epochs = serializers.IntegerField(write_only=True, required=False, min_value=1, max_value=500,
                                          help_text="stop after this many epochs even if time is left (default 40)")

    class Meta:
        model = DetectorRun
        fields = [
            "id", "reference_set", "synthetic_sets", "seed", "minutes", "max_epochs", "max_seconds", "config", "status",
            "progress", "cancel_requested", "checkpoint_sha256", "message", "created_at", "started_at", "finished_at",
        ]
        read_only_fields = ["max_seconds", "config", "status", "progress", "cancel_requested", "checkpoint_sha256",
                            "message", "created_at", "started_at", "finished_at"]

    def get_fields(self):
        fields = super().get_fields()
        writable = _writable_sets(self.context.get("request"))
        fields["reference_set"].queryset = writable
        fields["synthetic_sets"].child_relation.queryset = writable
        return fields

    def validate(self, attrs):
        problems = training_set_problems(attrs["reference_set"], list(attrs["synthetic_sets"]))
        if problems:
            raise serializers.ValidationError(problems)
        return attrs

    def create(self, validated):
        return create_detector_run(validated["reference_set"], list(validated["synthetic_sets"]), minutes=validated["minutes"],
                                   seed=validated.get("seed", 0), max_epochs=validated.get("max_epochs"),
                                   user=validated.get("created_by"))


class DetectorRunDetailSerializer(DetectorRunSerializer):
    class Meta(DetectorRunSerializer.Meta):
        fields = DetectorRunSerializer.Meta.fields + ["evaluation"]
        read_only_fields = DetectorRunSerializer.Meta.read_only_fields + ["evaluation"]


class DetectorScoringSerializer(serializers.ModelSerializer):
    image_set_name = serializers.CharField(source="image_set.name", read_only=True)

    class Meta:
        model = DetectorScoring
        fields = ["id", "detector", "image_set", "image_set_name", "status", "total", "processed", "summary", "message",
                  "created_at", "started_at", "finished_at"]
        read_only_fields = fields


class ScoreRequestSerializer(serializers.Serializer):
    image_set = serializers.PrimaryKeyRelatedField(queryset=ImageSet.objects.none(), help_text="the set to score")

    def __init__(self, *args, detector: DetectorRun | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if detector is not None:  # only the detector's own organisation's sets
            self.fields["image_set"].queryset = ImageSet.objects.filter(organisation_id=detector.organisation_id)


class ImageScoreSerializer(serializers.ModelSerializer):
    image_set = serializers.IntegerField(source="image.image_set_id", read_only=True)
    sha256 = serializers.CharField(source="image.sha256", read_only=True)
    original_name = serializers.CharField(source="image.original_name", read_only=True)

    class Meta:
        model = ImageScore
        fields = ["image", "image_set", "sha256", "original_name", "probability_synthetic"]
        read_only_fields = fields


IMAGE_SET_FILTER = OpenApiParameter("image_set", OpenApiTypes.INT, description="only images of this set")


class DetectorRunViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Train a synthetic-image detector (real reference set vs synthetic sets; a Celery task); poll `progress`;
    cancel; score any image set of the organisation and read per-image P(synthetic) and set-level summaries."""

    permission_classes = [ImageSetRolePermission]

    def get_queryset(self):
        return (DetectorRun.objects.filter(organisation_id__in=organisation_ids(self.request.user, READ_ROLES))
                .select_related("reference_set").prefetch_related("synthetic_sets").order_by("-created_at", "-id"))

    def get_serializer_class(self):
        return DetectorRunDetailSerializer if self.action == "retrieve" else DetectorRunSerializer

    def perform_create(self, serializer):
        serializer.save(created_by=self.request.user)

    @extend_schema(request=None, responses={
        202: DetectorRunSerializer, 409: OpenApiResponse(description="the run has already finished")})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Ask a queued or running training to stop; it stops at its next progress report."""
        run = self.get_object()
        if not run.request_cancel():
            return Response({"detail": f"detector run {run.pk} has already finished ({run.status})"}, status=status.HTTP_409_CONFLICT)
        return Response(DetectorRunSerializer(run, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(methods=["GET"], request=None, responses={200: DetectorScoringSerializer(many=True)},
                   description="The sets this detector scored (or is scoring), with their set-level summaries.")
    @extend_schema(methods=["POST"], request=ScoreRequestSerializer, responses={
        202: DetectorScoringSerializer, 400: OpenApiResponse(description="the detector is not trained, or the set is empty")},
        description="Queue scoring every image of a set (a Celery task). Scores already stored are kept; asking again "
                    "scores only new images and recomputes the summary.")
    @action(detail=True, methods=["get", "post"])
    def score(self, request, pk=None):
        run = self.get_object()
        if request.method == "GET":
            scorings = run.scorings.select_related("image_set").order_by("-created_at", "-id")
            page = self.paginate_queryset(scorings)
            return self.get_paginated_response(DetectorScoringSerializer(page, many=True).data)
        payload = ScoreRequestSerializer(data=request.data, detector=run)
        payload.is_valid(raise_exception=True)
        try:
            scoring = request_scoring(run, payload.validated_data["image_set"], user=request.user)
        except ScoringError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(DetectorScoringSerializer(scoring).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(parameters=[IMAGE_SET_FILTER], request=None, responses={200: ImageScoreSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def scores(self, request, pk=None):
        """Per-image calibrated P(synthetic) stored for this detector (paginated, in image order)."""
        run = self.get_object()
        rows = ImageScore.objects.filter(detector=run).select_related("image").order_by("image_id")
        if (image_set := _int_param(request, "image_set")) is not None:
            rows = rows.filter(image__image_set_id=image_set)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(ImageScoreSerializer(page, many=True).data)
