"""API for audits (create, edit while draft, run, poll, results, re-run) and their versioned reports."""
from __future__ import annotations

from django.db import DatabaseError
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response

from auditor.access import READ_ROLES, WRITE_ROLES, organisation_ids
from auditor.api.permissions import ImageSetRolePermission
from auditor.api.schema import error_responses
from auditor.audits import pipeline
from auditor.audits.tasks import continue_audit_task, run_audit_task
from auditor.models import Audit, DetectorRun, ImageSet, Report
from auditor.models.audits import DEFAULT_CRITERIA
from auditor.reporting.issuing import ReportError, ReportGenerationError, approve_report, retry_report
from metrics.utility import CLASS_MIXES, CURVE_RATIOS


def _writable_sets(request):
    return ImageSet.objects.filter(organisation_id__in=organisation_ids(request.user, WRITE_ROLES))


def _label_column(value) -> str | None:
    if not isinstance(value, str) or not value.strip() or len(value) > 100:
        return "must name a labels.csv column (e.g. diagnosis or benign_malignant)"
    return None


def _ratio(value) -> str | None:
    if value == "own" or (isinstance(value, (int, float)) and not isinstance(value, bool)
                          and 0 < value <= max(CURVE_RATIOS)):
        return None
    return f"must be 'own' or a number of generated images per real training image in (0, {max(CURVE_RATIOS):g}]"


# Options a criterion takes besides threshold and enabled, each with its check (None: valid, else the problem).
CRITERION_OPTIONS = {
    "utility_gain": {
        "label": _label_column,
        "ratio": _ratio,
        "class_mix": lambda v: None if v in CLASS_MIXES else f"must be one of {list(CLASS_MIXES)}",
        "high_risk": lambda v: None if isinstance(v, list) and all(isinstance(i, str) for i in v)
        else "must be a list of class names",
        "classifier": lambda v: None if v in ("linear_probe", "fine_tuned") else "must be linear_probe or fine_tuned",
    },
}


class AuditSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()

    class Meta:
        model = Audit
        fields = [
            "id", "name", "organisation", "generated_set", "reference_set", "training_set", "baseline_set",
            "include_copy_baseline", "detector", "reader_study", "target_phototype", "criteria", "extractor_id",
            "feature_precision", "seed",
            "status", "locked_at", "created_at", "started_at", "finished_at", "progress",
        ]
        read_only_fields = ["organisation", "status", "locked_at", "created_at", "started_at", "finished_at"]

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        if request is not None:
            # Other organisations' sets and detectors look exactly like ids that do not exist.
            for name in ("generated_set", "reference_set", "training_set", "baseline_set"):
                fields[name].queryset = _writable_sets(request)
            fields["detector"].queryset = DetectorRun.objects.filter(organisation_id__in=organisation_ids(request.user, WRITE_ROLES))
            from reader_study.models import Study

            fields["reader_study"].queryset = Study.objects.filter(organisation_id__in=organisation_ids(request.user, WRITE_ROLES))
        return fields

    def get_progress(self, obj: Audit) -> dict:
        return pipeline.progress(obj)

    def validate_criteria(self, value):
        if not isinstance(value, dict):
            raise ValidationError("criteria must be an object")
        for name, spec in value.items():
            if name not in DEFAULT_CRITERIA:
                raise ValidationError(f"unknown criterion {name!r}; known: {sorted(DEFAULT_CRITERIA)}")
            options = set(CRITERION_OPTIONS.get(name, {}))
            if not isinstance(spec, dict) or set(spec) - {"threshold", "enabled"} - options:
                extra = f", and its options {sorted(options)}" if options else ""
                raise ValidationError(f"{name}: give only 'threshold' (a number) and/or 'enabled' (true/false){extra}")
            if "threshold" in spec and not isinstance(spec["threshold"], (int, float)):
                raise ValidationError(f"{name}: threshold must be a number")
            for option, check in CRITERION_OPTIONS.get(name, {}).items():
                if option in spec and (problem := check(spec[option])):
                    raise ValidationError(f"{name}: {option} {problem}")
        return value

    def validate_target_phototype(self, value):
        kind = (value or {}).get("kind", "uniform")
        if kind not in {"uniform", "reference", "custom"}:
            raise ValidationError("kind must be uniform, reference or custom")
        if kind == "custom":
            distribution = value.get("distribution") or {}
            if set(distribution) - {str(i) for i in range(1, 7)} or not distribution or any(
                    not isinstance(v, (int, float)) or v < 0 for v in distribution.values()):
                raise ValidationError('custom needs "distribution": {"1".."6": non-negative weights}')
        return value

    def validate(self, attrs):
        if self.instance is not None and self.instance.status != Audit.Status.DRAFT:
            raise ValidationError("the audit has started: its inputs and criteria are frozen")
        sets = [attrs.get(k) or (getattr(self.instance, k) if self.instance else None)
                for k in ("generated_set", "reference_set", "training_set", "baseline_set")]
        organisations = {s.organisation_id for s in sets if s is not None}
        if len(organisations) > 1:
            raise ValidationError("all image sets of an audit must belong to one organisation")
        return attrs

    def create(self, validated):
        validated["organisation"] = validated["generated_set"].organisation
        return super().create(validated)


class ReportSerializer(serializers.ModelSerializer):
    prepared_by = serializers.CharField(source="prepared_by.username", allow_null=True, read_only=True)
    approved_by = serializers.CharField(source="approved_by.username", allow_null=True, read_only=True)

    class Meta:
        model = Report
        fields = ["id", "audit", "version", "status", "pdf_sha256", "created_at", "prepared_by", "approved_by", "approved_at"]


class AuditViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin,
                   viewsets.GenericViewSet):
    """Create a draft audit, adjust it (criteria included) until it runs, run it, poll `progress`, read results."""

    serializer_class = AuditSerializer
    permission_classes = [ImageSetRolePermission]

    def get_queryset(self):
        return Audit.objects.filter(organisation_id__in=organisation_ids(self.request.user, READ_ROLES)).order_by("-created_at")

    def perform_create(self, serializer):
        serializer.save(created_by=self.request.user)

    @extend_schema(request=None, responses={202: AuditSerializer})
    @action(detail=True, methods=["post"])
    def run(self, request, pk=None):
        audit = self.get_object()
        try:
            audit = pipeline.start_audit(audit, enqueue=lambda audit_id: run_audit_task.delay(audit_id))
        except pipeline.AuditConfigurationError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(AuditSerializer(audit, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: AuditSerializer})
    @action(detail=True, methods=["post"])
    def rerun(self, request, pk=None):
        """Run the same inputs, seed and criteria again as a new audit (cached features are reused)."""
        audit = self.get_object()
        try:
            pipeline.validate_audit(audit)
            clone = pipeline.clone_for_rerun(audit, request.user)
            clone = pipeline.start_audit(clone, enqueue=lambda audit_id: run_audit_task.delay(audit_id))
        except pipeline.AuditConfigurationError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(AuditSerializer(clone, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: AuditSerializer, **error_responses(409)})
    @action(detail=True, methods=["post"], url_path="retry-report")
    def retry_report(self, request, pk=None):
        """Generate the report again after it failed (e.g. a corrupt heat map, since restored); the earlier stages'
        stored results are reused, not recomputed."""
        audit = self.get_object()
        try:
            retry_report(audit, enqueue=lambda audit_id: continue_audit_task.delay(audit_id))
        except ReportError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        audit.refresh_from_db()
        return Response(AuditSerializer(audit, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"])
    def results(self, request, pk=None):
        """Every finished stage's results (available even when a later stage failed)."""
        audit = self.get_object()
        return Response({"audit": audit.pk, "progress": pipeline.progress(audit),
                         "stages": {r.stage: r.data for r in audit.results.all()}})

    @extend_schema(responses={200: ReportSerializer(many=True)})
    @action(detail=True, methods=["get"], pagination_class=None)  # every version, as a plain list
    def reports(self, request, pk=None):
        audit = self.get_object()
        return Response(ReportSerializer(audit.reports.all(), many=True).data)


class ReportViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Every version of every report stays downloadable; approval issues a new version."""

    serializer_class = ReportSerializer
    permission_classes = [ImageSetRolePermission]

    def get_queryset(self):
        return Report.objects.filter(audit__organisation_id__in=organisation_ids(self.request.user, READ_ROLES)).select_related(
            "audit", "prepared_by", "approved_by").order_by("-created_at")

    def _file(self, report: Report, which: str, content_type: str) -> FileResponse:
        path = report.pdf if which == "pdf" else report.json
        name = f"dermaudit-audit{report.audit_id}-v{report.version}.{which}"
        return FileResponse(open(path, "rb"), content_type=content_type, as_attachment=True, filename=name)

    @extend_schema(responses={(200, "application/pdf"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def pdf(self, request, pk=None):
        return self._file(self.get_object(), "pdf", "application/pdf")

    @extend_schema(responses={(200, "application/json"): OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"], url_path="json")
    def json_twin(self, request, pk=None):
        return self._file(self.get_object(), "json", "application/json")

    @extend_schema(request=None, responses={201: ReportSerializer, **error_responses(503, 507)})
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        report = self.get_object()
        try:
            approved = approve_report(report, request.user)
        except PermissionError as exc:
            raise PermissionDenied(str(exc)) from None
        except ReportGenerationError as exc:  # a server-side fault, not the request's: nothing was issued
            code = status.HTTP_507_INSUFFICIENT_STORAGE if exc.storage_full else status.HTTP_500_INTERNAL_SERVER_ERROR
            return Response({"detail": str(exc)}, status=code)
        except ReportError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        except DatabaseError as exc:
            return Response({"detail": f"the approval could not be recorded (database error: {exc}); no new version "
                                       "was issued, try again"}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(ReportSerializer(approved).data, status=status.HTTP_201_CREATED)
