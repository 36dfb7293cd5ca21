"""API for audits (create, edit while draft, run, poll, results, re-run) and their versioned reports."""
from __future__ import annotations

from django.core.exceptions import SuspiciousFileOperation
from django.db import DatabaseError
from django.db.models import Prefetch
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import build_array_type
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response

from auditor.access import READ_ROLES, WRITE_ROLES, organisation_ids
from auditor.api.permissions import ImageSetRolePermission
from auditor.api.schema import MAX_ID, error_responses
from auditor.audits import pipeline
from auditor.audits.tasks import continue_audit_task, run_audit_task
from auditor.models import Audit, AuditResult, DetectorRun, ImageSet, Report, Signature
from auditor.models.trail import trail_of_audit
from auditor.models.audits import DEFAULT_CRITERIA
from auditor.reporting.criteria import (INCOMPLETE, LOWER, POINT, STAGES_READ, UPPER, VERDICTS, audit_verdict,
                                        evaluate_criteria, public_criteria)
from auditor.reporting.issuing import (ReportError, ReportGenerationError, SignatureInputError, retry_report,
                                      sign_report)
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
    "detectability": {
        "tests": lambda v: None if isinstance(v, list) and v and set(v) <= {"vit", "probe"} and len(set(v)) == len(v)
        else "must be a non-empty list of distinct tests among 'vit' and 'probe'",
    },
    "utility_gain": {
        "label": _label_column,
        "ratio": _ratio,
        "class_mix": lambda v: None if v in CLASS_MIXES else f"must be one of {list(CLASS_MIXES)}",
        "high_risk": lambda v: None if isinstance(v, list) and all(isinstance(i, str) for i in v)
        else "must be a list of class names",
        "classifier": lambda v: None if v in ("linear_probe", "fine_tuned") else "must be linear_probe or fine_tuned",
    },
}


# --- the evaluated criteria: typed objects (auditor.reporting.criteria.public_criteria) ------------------------

COMPARED = [POINT, UPPER, LOWER]


class ControlRequirementSerializer(serializers.Serializer):
    """What a control must show, for machines: it is met exactly when `compared_value <op> bound`."""

    direction = serializers.ChoiceField(["max", "min"], help_text="the rule's direction: max = at most `bound`, "
                                                                   "min = at least `bound`")
    bound = serializers.FloatField(help_text="the criterion's own threshold, or the control's requirement (`source`)")
    must = serializers.ChoiceField(["pass", "fail"], help_text="negative controls must pass the rule; positive controls "
                                                               "must fail the criterion's threshold, or pass their own "
                                                               "detection requirement")
    op = serializers.ChoiceField(["<=", ">=", "<", ">"], help_text="direction and must in one comparison")
    source = serializers.ChoiceField(["criterion threshold", "control requirement"])


class CriterionControlSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(["negative", "positive"], help_text="negative: a set known to be fine; positive: "
                                                                       "a set known to be bad")
    set = serializers.CharField(help_text="which set the control measured")
    value = serializers.FloatField(allow_null=True, help_text="point estimate (null: not measured)")
    ci_low = serializers.FloatField(allow_null=True, help_text="lower 95% CI bound of the estimate")
    ci_high = serializers.FloatField(allow_null=True, help_text="upper 95% CI bound of the estimate")
    compared_value = serializers.FloatField(allow_null=True, help_text="the number compared with `required.bound`")
    compared_is = serializers.ChoiceField(COMPARED, help_text="which number `compared_value` is")
    required = ControlRequirementSerializer()
    met = serializers.BooleanField(allow_null=True, help_text="null: not measured")
    waived = serializers.CharField(allow_null=True, help_text="why this control does not count (only a positive "
                                                              "control that guards a PASS, when the set failed itself)")
    reason = serializers.CharField(allow_null=True, help_text="why it was not measured")


class CriterionSerializer(serializers.Serializer):
    """One acceptance criterion as evaluated from the audit's stored stage results."""

    name = serializers.CharField(help_text=f"one of {', '.join(DEFAULT_CRITERIA)}")
    title = serializers.CharField()
    status = serializers.ChoiceField(["PASS", "FAIL", "N/A"], help_text="N/A: not selected, not measured, or a "
                                                                        "control did not behave (see `reason`)")
    enabled = serializers.BooleanField(help_text="selected for this audit; criteria not selected do not count "
                                                 "towards the verdict")
    value = serializers.FloatField(allow_null=True, help_text="point estimate (null: not measured)")
    ci_low = serializers.FloatField(allow_null=True, help_text="lower 95% CI bound of the estimate")
    ci_high = serializers.FloatField(allow_null=True, help_text="upper 95% CI bound of the estimate")
    compared_value = serializers.FloatField(allow_null=True, help_text="the number the rule compares with `threshold`")
    compared_is = serializers.ChoiceField(COMPARED, help_text="which number `compared_value` is")
    threshold = serializers.FloatField()
    direction = serializers.ChoiceField(["max", "min"], help_text="max: PASS when compared_value <= threshold; "
                                                                  "min: PASS when compared_value >= threshold")
    unit = serializers.CharField()
    controls = CriterionControlSerializer(many=True)
    reason = serializers.CharField(allow_null=True, help_text="why the status is N/A")


def criteria_rows(audit: Audit) -> list[dict]:
    """The audit's evaluated criteria, once per instance (the `criteria` and `verdict` fields both read them). A list
    page prefetches the stage results they read into `criteria_results`."""
    rows = getattr(audit, "_criteria_rows", None)
    if rows is None:
        stored = getattr(audit, "criteria_results", None)
        if stored is None:
            stored = audit.results.filter(stage__in=STAGES_READ)
        rows = audit._criteria_rows = evaluate_criteria(audit, {r.stage: r.data for r in stored})
    return rows


def with_criteria_results(queryset):
    return queryset.select_related("reader_study").prefetch_related(
        Prefetch("results", queryset=AuditResult.objects.filter(stage__in=STAGES_READ), to_attr="criteria_results"))


def _criteria_settings_schema() -> dict:
    options = {"label": {"type": "string", "maxLength": 100}, "ratio": {"oneOf": [{"type": "string", "enum": ["own"]},
                                                                                  {"type": "number"}]},
               "class_mix": {"type": "string", "enum": list(CLASS_MIXES)},
               "high_risk": {"type": "array", "items": {"type": "string"}},
               "classifier": {"type": "string", "enum": ["linear_probe", "fine_tuned"]},
               "tests": {"type": "array", "items": {"type": "string", "enum": ["vit", "probe"]}, "minItems": 1,
                         "uniqueItems": True}}
    properties = {}
    for name in DEFAULT_CRITERIA:
        fields = {"threshold": {"type": "number"}, "enabled": {"type": "boolean"}}
        fields.update({option: options[option] for option in CRITERION_OPTIONS.get(name, {})})
        properties[name] = {"type": "object", "properties": fields, "additionalProperties": False}
    return {"type": "object", "properties": properties, "additionalProperties": False,
            "description": "per criterion, the settings that differ from the defaults: threshold, enabled and the "
                           "criterion's options (see the README's criteria)"}


class CriteriaField(serializers.Field):
    """`criteria` reads one way and writes another. Written (create, or edit while draft): the criteria settings,
    {name: {"threshold": number, "enabled": bool, options}}. Read: the evaluated criteria, a list of
    CriterionSerializer objects. The settings as stored read back as `criteria_settings`."""

    def __init__(self, **kwargs):
        super().__init__(source="*", required=False, **kwargs)

    def to_internal_value(self, data):
        return {"criteria": validate_criteria_settings(data)}

    def to_representation(self, audit: Audit):
        return CriterionSerializer(public_criteria(criteria_rows(audit)), many=True).data


class CriteriaSettingsField(serializers.JSONField):
    """The criteria settings as stored (what `criteria` was last written with)."""


class CriteriaFieldSchema(OpenApiSerializerFieldExtension):
    target_class = CriteriaField

    def map_serializer_field(self, auto_schema, direction):
        if direction == "request":
            return _criteria_settings_schema()
        return build_array_type(auto_schema.resolve_serializer(CriterionSerializer, direction).ref)


class CriteriaSettingsFieldSchema(OpenApiSerializerFieldExtension):
    target_class = CriteriaSettingsField

    def map_serializer_field(self, auto_schema, direction):
        return _criteria_settings_schema()


def validate_criteria_settings(value) -> dict:
    if not isinstance(value, dict):
        raise ValidationError("criteria must be an object")
    for name, spec in value.items():
        if name not in DEFAULT_CRITERIA:
            raise ValidationError(f"unknown criterion {name!r}; known: {sorted(DEFAULT_CRITERIA)}")
        options = set(CRITERION_OPTIONS.get(name, {}))
        if not isinstance(spec, dict) or set(spec) - {"threshold", "enabled"} - options:
            extra = f", and its options {sorted(options)}" if options else ""
            raise ValidationError(f"{name}: give only 'threshold' (a number) and/or 'enabled' (true/false){extra}")
        if "threshold" in spec and (isinstance(spec["threshold"], bool) or not isinstance(spec["threshold"], (int, float))):
            raise ValidationError(f"{name}: threshold must be a number")
        if "enabled" in spec and not isinstance(spec["enabled"], bool):
            raise ValidationError(f"{name}: enabled must be true or false")
        for option, check in CRITERION_OPTIONS.get(name, {}).items():
            if option in spec and (problem := check(spec[option])):
                raise ValidationError(f"{name}: {option} {problem}")
    return value


class AuditSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()
    verdict = serializers.SerializerMethodField(
        help_text="PASS only when the audit succeeded and every selected criterion PASSes; FAIL when it succeeded and "
                  "any selected criterion FAILs; otherwise INCOMPLETE (a draft, queued, running or failed audit, or a "
                  "selected criterion N/A). Never read INCOMPLETE as PASS.")
    criteria = CriteriaField(help_text="read: the evaluated criteria (one object per criterion, numbers as numbers); "
                                       "write: the criteria settings, {name: {threshold, enabled, options}}")
    criteria_settings = CriteriaSettingsField(source="criteria", read_only=True)

    class Meta:
        model = Audit
        fields = [
            "id", "name", "organisation", "generated_set", "reference_set", "training_set", "baseline_set",
            "include_copy_baseline", "detector", "reader_study", "target_phototype", "criteria", "criteria_settings",
            "extractor_id", "feature_precision", "seed",
            "status", "locked_at", "created_at", "started_at", "finished_at", "progress", "verdict",
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

    @extend_schema_field(serializers.ChoiceField(VERDICTS))
    def get_verdict(self, obj: Audit) -> str:
        return audit_verdict(obj, criteria_rows(obj))

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


class AuditFilterSerializer(serializers.Serializer):
    """The list's query parameters; an empty value means no filter, a bad one answers 400 naming the parameter."""

    status = serializers.ChoiceField(Audit.Status.choices, required=False)
    verdict = serializers.ChoiceField(VERDICTS, required=False, help_text="the audits' `verdict` (INCOMPLETE includes "
                                                                          "drafts and running audits)")
    generated_set = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False, help_text="image set id")
    reference_set = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False, help_text="image set id")
    created_after = serializers.DateTimeField(required=False, help_text="ISO 8601 date-time: audits created at or "
                                                                        "after it (without an offset: UTC)")


class SignatureSerializer(serializers.ModelSerializer):
    """An electronic signature on a report version (append-only)."""

    signer = serializers.CharField(source="signer_username", read_only=True)
    signed_version = serializers.IntegerField(source="report.version", read_only=True,
                                              help_text="the version that was signed")

    class Meta:
        model = Signature
        fields = ["id", "signer", "signer_full_name", "signed_at", "meaning", "reason", "signed_version",
                  "signed_pdf_sha256", "failed_criteria"]
        read_only_fields = fields


class ReportSerializer(serializers.ModelSerializer):
    prepared_by = serializers.CharField(source="prepared_by.username", allow_null=True, read_only=True)
    approved_by = serializers.CharField(source="approved_by.username", allow_null=True, read_only=True)
    signature = SignatureSerializer(read_only=True, allow_null=True,
                                    help_text="the signature (on the previous version) that issued this version")

    class Meta:
        model = Report
        fields = ["id", "audit", "version", "status", "pdf_sha256", "created_at", "prepared_by", "approved_by", "approved_at",
                  "signature"]


class SignRequestSerializer(serializers.Serializer):
    """An electronic signature: who you are (your password again), what it means, and why."""

    password = serializers.CharField(write_only=True, style={"input_type": "password"},
                                     help_text="your own password, entered again")
    meaning = serializers.ChoiceField(Signature.Meaning.choices)
    reason = serializers.CharField(max_length=2000, help_text="why you sign with this meaning (printed in the report)")


class TrailChangeSerializer(serializers.Serializer):
    field = serializers.CharField(help_text="the field; nested settings are dotted, e.g. criteria.kid.threshold")
    old = serializers.JSONField(allow_null=True)
    new = serializers.JSONField(allow_null=True)


class TrailEntrySerializer(serializers.Serializer):
    """One entry of the audit trail (append-only; no endpoint changes one)."""

    at = serializers.DateTimeField(help_text="UTC")
    who = serializers.CharField(help_text="the user, or 'system' for changes made by workers")
    what = serializers.CharField(help_text="the audit, one of its image sets, its reader study, or a report version")
    action = serializers.CharField(help_text="created, changed, deleted, or signed: <meaning>")
    changes = TrailChangeSerializer(many=True)


@extend_schema_view(list=extend_schema(parameters=[AuditFilterSerializer]))
class AuditViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin,
                   viewsets.GenericViewSet):
    """Create a draft audit, adjust it (criteria included) until it runs, run it, poll `progress` and `verdict`, read
    results. The list filters by status, verdict, generated_set, reference_set and created_after."""

    serializer_class = AuditSerializer
    permission_classes = [ImageSetRolePermission]

    def get_queryset(self):
        audits = Audit.objects.filter(organisation_id__in=organisation_ids(self.request.user, READ_ROLES))
        if self.action == "list":  # each row's criteria and verdict read these results: load them with the page
            audits = with_criteria_results(audits)
        return audits.order_by("-created_at", "-id")

    def filter_queryset(self, queryset):
        if self.action != "list":
            return queryset
        given = {name: value for name, value in self.request.query_params.items()
                 if name in AuditFilterSerializer().fields and value != ""}
        filters = AuditFilterSerializer(data=given)
        filters.is_valid(raise_exception=True)
        wanted = filters.validated_data
        if "status" in wanted:
            queryset = queryset.filter(status=wanted["status"])
        if "generated_set" in wanted:
            queryset = queryset.filter(generated_set_id=wanted["generated_set"])
        if "reference_set" in wanted:
            queryset = queryset.filter(reference_set_id=wanted["reference_set"])
        if "created_after" in wanted:
            queryset = queryset.filter(created_at__gte=wanted["created_after"])
        if "verdict" in wanted:
            queryset = self._with_verdict(queryset, wanted["verdict"])
        return queryset

    @staticmethod
    def _with_verdict(queryset, verdict: str):
        """The verdict is computed, not stored (it follows the stored results and a linked reader study): it is
        worked out here for every succeeded audit the other filters leave, and becomes a filter on ids, so that
        pagination and the count stay right. Audits that have not succeeded are INCOMPLETE without evaluation."""
        succeeded = queryset.filter(status=Audit.Status.SUCCEEDED).order_by()  # with the list's prefetched results
        verdicts = {audit.pk: audit_verdict(audit, criteria_rows(audit)) for audit in succeeded.iterator(chunk_size=100)}
        if verdict == INCOMPLETE:
            return queryset.exclude(pk__in=[pk for pk, value in verdicts.items() if value != INCOMPLETE])
        return queryset.filter(pk__in=[pk for pk, value in verdicts.items() if value == verdict])

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

    @extend_schema(responses={200: TrailEntrySerializer(many=True)})
    @action(detail=True, methods=["get"], pagination_class=None)
    def trail(self, request, pk=None):
        """The audit trail, oldest first: who changed the audit (criteria and sets included), its image sets and its
        reader study, when, from what to what, and every signature on its reports. Read-only: nothing edits it."""
        return Response(TrailEntrySerializer(trail_of_audit(self.get_object()), many=True).data)

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
            "audit", "prepared_by", "approved_by", "signature__report").order_by("-created_at")

    def _file(self, report: Report, which: str, content_type: str) -> FileResponse:
        name = f"dermaudit-audit{report.audit_id}-v{report.version}.{which}"
        try:
            file = report.open_file(which)  # by storage name, through the default storage
        except (OSError, SuspiciousFileOperation):
            raise NotFound(f"this report's {which.upper()} file cannot be read") from None
        return FileResponse(file, content_type=content_type, as_attachment=True, filename=name)

    @extend_schema(responses={(200, "application/pdf"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def pdf(self, request, pk=None):
        return self._file(self.get_object(), "pdf", "application/pdf")

    @extend_schema(responses={(200, "application/json"): OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"], url_path="json")
    def json_twin(self, request, pk=None):
        return self._file(self.get_object(), "json", "application/json")

    @extend_schema(request=SignRequestSerializer, responses={201: ReportSerializer, **error_responses(
        400, 403, 503, 507, e400="a field is missing or invalid (each one named), or the version cannot be signed",
        e403="not an organisation admin, the report's preparer (four eyes), or a wrong password; nothing was signed")})
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        """Sign the latest version electronically: re-enter your password, give the meaning (reviewed, approved or
        rejected) and a reason. The signature (signer, UTC time, meaning, reason, the signed PDF's SHA-256) is
        recorded and a new version is issued that prints it; "approved" makes it approved. A failing report can be
        approved: its failed criteria are printed beside the reason."""
        report = self.get_object()
        data = request.data if hasattr(request.data, "get") else {}
        try:
            issued = sign_report(report, request.user, password=data.get("password"), meaning=data.get("meaning"),
                                 reason=data.get("reason"))
        except PermissionError as exc:
            raise PermissionDenied(str(exc)) from None
        except SignatureInputError as exc:
            return Response({"detail": f"missing or invalid: {', '.join(exc.problems)}",
                             **{field: [problem] for field, problem in exc.problems.items()}},
                            status=status.HTTP_400_BAD_REQUEST)
        except ReportGenerationError as exc:  # a server-side fault, not the request's: nothing was issued
            code = status.HTTP_507_INSUFFICIENT_STORAGE if exc.storage_full else status.HTTP_500_INTERNAL_SERVER_ERROR
            return Response({"detail": str(exc)}, status=code)
        except ReportError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        except DatabaseError as exc:
            return Response({"detail": f"the signature could not be recorded (database error: {exc}); nothing was "
                                       "signed and no new version was issued, try again"},
                            status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(ReportSerializer(issued).data, status=status.HTTP_201_CREATED)  # its `signature` included
