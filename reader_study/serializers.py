from __future__ import annotations

from django.contrib.auth import get_user_model
from django.urls import reverse
from rest_framework import serializers

from auditor.access import WRITE_ROLES, organisation_ids
from auditor.api.schema import MAX_ID
from auditor.models import Organisation

from .models import Assignment, Showing, Study, StudyArm
from .services import ArmSpec, Progress, StudyDesign, StudyError, create_study, reader_progress_table


class ArmSerializer(serializers.Serializer):
    image_set = serializers.IntegerField(source="image_set_id", min_value=1, max_value=MAX_ID)
    count = serializers.IntegerField(min_value=1)
    label = serializers.CharField(read_only=True)
    truth = serializers.SerializerMethodField()

    def get_truth(self, arm: StudyArm) -> str:
        return "synthetic" if arm.truth_synthetic else "real"


class StudySerializer(serializers.ModelSerializer):
    organisation = serializers.PrimaryKeyRelatedField(queryset=Organisation.objects.all(), required=False)
    arms = ArmSerializer(many=True)
    seed = serializers.IntegerField(required=False, min_value=0, max_value=2**62)
    case_count = serializers.SerializerMethodField()
    readers = serializers.SerializerMethodField()

    class Meta:
        model = Study
        fields = [
            "id", "organisation", "name", "description", "status", "seed", "arms", "balance_by", "repeat_fraction",
            "ask_call", "confidence_scale", "ask_quality", "ask_diagnosis", "diagnosis_choices", "allow_changes",
            "image_size", "case_count", "readers", "created_at", "opened_at", "closed_at",
        ]
        read_only_fields = ["status", "diagnosis_choices", "created_at", "opened_at", "closed_at"]
        validators = []  # name uniqueness is checked by the service once the organisation is known

    def get_case_count(self, study: Study) -> int:
        return study.cases.count()

    def get_readers(self, study: Study) -> list[dict]:
        """Progress per invited reader (counts only: nobody sees answers before the study closes)."""
        return reader_progress_table(study)

    def validate(self, attrs):
        writable = organisation_ids(self.context["request"].user, WRITE_ROLES)
        organisation = attrs.get("organisation")
        if organisation is None:
            if len(writable) != 1:
                raise serializers.ValidationError({"organisation": "required: you belong to several organisations"})
            attrs["organisation"] = Organisation.objects.get(pk=writable[0])
        elif organisation.pk not in writable:
            raise serializers.ValidationError({"organisation": "you cannot create studies in this organisation"})
        return attrs

    def create(self, validated_data):
        arms = tuple(ArmSpec(image_set_id=a["image_set_id"], count=a["count"]) for a in validated_data.pop("arms"))
        organisation = validated_data.pop("organisation")
        design = StudyDesign(arms=arms, **validated_data)
        try:
            return create_study(organisation, design, created_by=self.context["request"].user)
        except StudyError as exc:
            raise serializers.ValidationError({"detail": str(exc)}) from None


class InviteSerializer(serializers.Serializer):
    readers = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=MAX_ID), allow_empty=False,
                                    help_text="user ids of members with the reader role")

    def validate_readers(self, value):
        users = list(get_user_model().objects.filter(pk__in=value))
        if len(users) != len(set(value)):
            raise serializers.ValidationError("unknown user")
        return users


class StatusChangeSerializer(serializers.Serializer):
    status = serializers.CharField(read_only=True)


class ReaderProgressSerializer(serializers.Serializer):
    reader = serializers.CharField(help_text="username")
    answered = serializers.IntegerField()
    total = serializers.IntegerField()


class InvitedReadersSerializer(serializers.Serializer):
    readers = ReaderProgressSerializer(many=True, help_text="every invited reader's progress")


# --- reader side: nothing here may depend on whether a case is real or synthetic -------------------------

def questions_of(study: Study) -> dict:
    confidence = None
    if study.asks_confidence:
        five = study.confidence_scale == Study.ConfidenceScale.FIVE_POINT
        confidence = {"scale": study.confidence_scale, "min": 1 if five else 0, "max": 5 if five else 100}
    return {
        "call": study.ask_call,
        "confidence": confidence,
        "quality": {"min": 1, "max": 5} if study.ask_quality else None,
        "diagnosis": list(study.diagnosis_choices) if study.ask_diagnosis else None,
        "allow_changes": study.allow_changes,
    }


def progress_dict(progress: Progress) -> dict:
    return {"answered": progress.answered, "total": progress.total, "done": progress.done}


def case_dict(showing: Showing) -> dict:
    return {"token": showing.token, "position": showing.position + 1,
            "image_url": reverse("readercase-image", args=[showing.token])}


class ReaderAssignmentSerializer(serializers.ModelSerializer):
    study_name = serializers.CharField(source="study.name")
    status = serializers.CharField(source="study.status")
    progress = serializers.SerializerMethodField()
    questions = serializers.SerializerMethodField()

    class Meta:
        model = Assignment
        fields = ["id", "study_name", "status", "progress", "questions"]

    def get_progress(self, assignment: Assignment) -> dict:
        from .services import progress

        return progress_dict(progress(assignment))

    def get_questions(self, assignment: Assignment) -> dict:
        return questions_of(assignment.study)


class AnswerInputSerializer(serializers.Serializer):
    call = serializers.ChoiceField(choices=["real", "synthetic"], required=False)
    # The widest ranges any study asks (its own scale is checked by services.parse_answer).
    confidence = serializers.IntegerField(required=False, min_value=0, max_value=100,
                                          help_text="1-5 on a five-point scale, 0-100 on a 0-100 scale")
    quality = serializers.IntegerField(required=False, min_value=1, max_value=5)
    diagnosis = serializers.CharField(required=False, allow_blank=True)
