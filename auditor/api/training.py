"""API for the service's own training runs: reference generators (and their samples)."""
from __future__ import annotations

from django.db import IntegrityError, transaction
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from auditor.access import READ_ROLES, WRITE_ROLES, organisation_ids
from auditor.api.permissions import ImageSetRolePermission
from auditor.api.schema import MAX_ID, error_responses
from auditor.api.serializers import ImageSetSerializer
from auditor.generation.runs import CONDITION_LABELS, GeneratorError, sample_to_image_set
from auditor.generation.tasks import train_generator_task
from auditor.models import GeneratorRun, ImageSet


class GeneratorRunSerializer(serializers.ModelSerializer):
    reference_set = serializers.PrimaryKeyRelatedField(queryset=ImageSet.objects.all())
    minutes = serializers.FloatField(write_only=True, required=False, min_value=0.05, max_value=24 * 60)
    image_size = serializers.ChoiceField(choices=[32, 64, 128], write_only=True, default=64)

    class Meta:
        model = GeneratorRun
        fields = [
            "id", "kind", "reference_set", "condition_label", "seed", "minutes", "max_steps", "image_size", "status",
            "progress", "cancel_requested", "checkpoint_sha256", "message", "created_at", "started_at", "finished_at",
        ]
        read_only_fields = ["status", "progress", "cancel_requested", "checkpoint_sha256", "message", "created_at",
                            "started_at", "finished_at"]

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        # Other organisations' sets look exactly like ids that do not exist.
        writable = organisation_ids(request.user, WRITE_ROLES) if request else []
        fields["reference_set"].queryset = ImageSet.objects.filter(organisation_id__in=writable)
        return fields

    def validate(self, attrs):
        if attrs.get("minutes") is None and attrs.get("max_steps") is None:
            raise serializers.ValidationError("give a budget: minutes and/or max_steps")
        if attrs["kind"] == GeneratorRun.Kind.CDCGAN and attrs.get("condition_label") not in CONDITION_LABELS:
            raise serializers.ValidationError({"condition_label": f"a cdcgan needs one of {CONDITION_LABELS}"})
        return attrs

    def create(self, validated):
        minutes = validated.pop("minutes", None)
        image_size = validated.pop("image_size", 64)
        return GeneratorRun.objects.create(
            organisation=validated["reference_set"].organisation, max_seconds=minutes * 60 if minutes else None,
            config={"image_size": image_size}, **validated,
        )


class SampleRequestSerializer(serializers.Serializer):
    n = serializers.IntegerField(min_value=1, max_value=20000, required=False)
    seed = serializers.IntegerField(default=0, min_value=0, max_value=MAX_ID)
    name = serializers.CharField(required=False, max_length=200)
    class_counts = serializers.DictField(child=serializers.IntegerField(min_value=0), required=False)

    def validate(self, attrs):
        if attrs.get("n") is None and not attrs.get("class_counts"):
            raise serializers.ValidationError("give n or class_counts")
        return attrs


class GeneratorRunViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Train a reference generator (a Celery task); poll `progress`; cancel; sample into a baseline image set."""

    serializer_class = GeneratorRunSerializer
    permission_classes = [ImageSetRolePermission]

    def get_queryset(self):
        return GeneratorRun.objects.filter(organisation_id__in=organisation_ids(self.request.user, READ_ROLES)).order_by("-created_at")

    def perform_create(self, serializer):
        run = serializer.save(created_by=self.request.user)
        transaction.on_commit(lambda: train_generator_task.delay(run.pk))

    @extend_schema(request=None, responses={202: GeneratorRunSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        run = self.get_object()
        run.request_cancel()
        return Response(GeneratorRunSerializer(run, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=SampleRequestSerializer, responses={201: ImageSetSerializer, **error_responses(409)})
    @action(detail=True, methods=["post"])
    def sample(self, request, pk=None):
        run = self.get_object()
        payload = SampleRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            image_set = sample_to_image_set(run, payload.validated_data.get("n", 0), seed=payload.validated_data["seed"],
                                            name=payload.validated_data.get("name"),
                                            class_counts=payload.validated_data.get("class_counts"), user=request.user)
        except GeneratorError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        except IntegrityError:  # set names are unique per organisation; the default name says seed and n
            return Response({"detail": "an image set with this name exists already; give another name"},
                            status=status.HTTP_409_CONFLICT)
        image_set.image_count = image_set.images.count()
        return Response(ImageSetSerializer(image_set, context={"request": request}).data, status=status.HTTP_201_CREATED)
