from __future__ import annotations

from rest_framework import serializers

from auditor.access import WRITE_ROLES, organisation_ids
from auditor.api.schema import MAX_ID
from auditor.models import Image, ImageSet, IngestError, IngestJob, Organisation

# Ids are 64-bit integers in every database we run on: a bigger number in a filter or an id list would make the
# query itself fail (a 500) instead of matching nothing, so inputs are bounded by it.


class ImageSetSerializer(serializers.ModelSerializer):
    organisation = serializers.PrimaryKeyRelatedField(queryset=Organisation.objects.all(), required=False)
    image_count = serializers.IntegerField(read_only=True)
    # allow_null, not default=None: a default makes DRF drop the field from PATCH answers (partial updates skip
    # defaults), and the schema must say it can be null.
    created_by = serializers.CharField(source="created_by.username", read_only=True, allow_null=True)

    class Meta:
        model = ImageSet
        fields = [
            "id", "organisation", "name", "kind", "generator_name", "generator_version", "generator_weights_sha256",
            "description", "intended_use", "created_by", "created_at", "manifest_sha256", "image_count",
        ]
        read_only_fields = ["created_at", "manifest_sha256"]
        validators = []  # name uniqueness per organisation is checked in validate(), after the organisation is known

    def validate(self, attrs):
        user = self.context["request"].user
        writable = organisation_ids(user, WRITE_ROLES)
        organisation = attrs.get("organisation")
        if self.instance is None:
            if organisation is None:
                if len(writable) != 1:
                    raise serializers.ValidationError({"organisation": "required: you belong to several organisations"})
                attrs["organisation"] = Organisation.objects.get(pk=writable[0])
            elif organisation.pk not in writable:
                raise serializers.ValidationError({"organisation": "you cannot create sets in this organisation"})
        elif organisation is not None and organisation.pk != self.instance.organisation_id:
            raise serializers.ValidationError({"organisation": "a set cannot move between organisations"})
        target_organisation = attrs.get("organisation") or self.instance.organisation
        name = attrs.get("name", getattr(self.instance, "name", None))
        clash = ImageSet.objects.filter(organisation=target_organisation, name=name)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError({"name": "an image set with this name already exists"})
        return attrs


class ImageSetDetailSerializer(ImageSetSerializer):
    label_counts = serializers.SerializerMethodField()
    ingest_error_count = serializers.SerializerMethodField()
    duplicate_count = serializers.SerializerMethodField()

    class Meta(ImageSetSerializer.Meta):
        fields = ImageSetSerializer.Meta.fields + ["label_counts", "ingest_error_count", "duplicate_count"]

    def get_label_counts(self, obj: ImageSet) -> dict[str, dict[str, int]]:
        return obj.label_counts()

    def get_ingest_error_count(self, obj: ImageSet) -> int:
        return obj.ingest_errors.count()

    def get_duplicate_count(self, obj: ImageSet) -> int:
        return obj.duplicate_records.count()


class ImageSerializer(serializers.ModelSerializer):
    file_url = serializers.SerializerMethodField()

    class Meta:
        model = Image
        fields = [
            "id", "image_set", "sha256", "pixel_sha256", "source_sha256", "original_name", "width", "height",
            "original_format", "original_mode", "normalisation_notes", "diagnosis", "fitzpatrick", "acquisition",
            "extra_labels", "fitzpatrick_estimate", "ita_deg", "phototype_method", "phototype_note", "created_at", "file_url",
        ]

    def get_file_url(self, obj: Image) -> str:
        request = self.context.get("request")
        path = f"/api/images/{obj.pk}/file/"
        return request.build_absolute_uri(path) if request else path


class IngestErrorSerializer(serializers.ModelSerializer):
    class Meta:
        model = IngestError
        fields = ["id", "image_set", "job", "file_name", "reason", "created_at"]


class IngestJobSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()

    class Meta:
        model = IngestJob
        fields = [
            "id", "image_set", "source", "status", "total", "processed", "imported", "duplicates", "skipped",
            "failed", "progress", "message", "created_at", "started_at", "finished_at",
        ]

    def get_progress(self, obj: IngestJob) -> float:
        if obj.status == IngestJob.Status.SUCCEEDED:
            return 1.0
        return round(obj.processed / obj.total, 4) if obj.total else 0.0


class UploadSerializer(serializers.Serializer):
    files = serializers.ListField(child=serializers.FileField(allow_empty_file=True), allow_empty=False,
                                  help_text="image files and/or zip archives (optionally with labels.csv)")


class CopyBaselineSerializer(serializers.Serializer):
    n = serializers.IntegerField(min_value=1, required=False, help_text="how many reference images (default: all)")
    seed = serializers.IntegerField(default=0, min_value=0, max_value=MAX_ID)  # numpy seeds are non-negative
