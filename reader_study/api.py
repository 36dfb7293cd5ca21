"""REST API: study design and results for managers; assignments, cases and answers for readers."""
from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, PermissionDenied
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from auditor.access import READ_ROLES, WRITE_ROLES, has_any_role
from auditor.api.schema import error_responses

from . import access, services
from .blinding import CONTENT_TYPE, blinded_image_bytes
from .models import Assignment, Study
from .serializers import (
    AnswerInputSerializer,
    InvitedReadersSerializer,
    InviteSerializer,
    ReaderAssignmentSerializer,
    StatusChangeSerializer,
    StudySerializer,
    case_dict,
    progress_dict,
    questions_of,
)

INTERIM = OpenApiParameter("interim", OpenApiTypes.BOOL, description="quality/admin: statistics before close")
# no-transform: a proxy that re-compressed the (uncompressed) image would give each case a content-dependent size.
IMAGE_CACHE_CONTROL = "private, max-age=86400, no-transform"
STATE_CONFLICT = error_responses(409, e409="the study's status does not allow this")
NOT_CLOSED = error_responses(409, e409="results are available once the study is closed (quality/admin: ?interim=1)")


class StudyRolePermission(BasePermission):
    """Managers only: developers read, quality/admin write; readers and others are refused (403) before any
    lookup, and another organisation's study is not found (404, via the queryset)."""

    message = "Your role does not allow this."

    def has_permission(self, request, view) -> bool:
        read_only = request.method in SAFE_METHODS
        return has_any_role(request.user, READ_ROLES if read_only else WRITE_ROLES)

    def has_object_permission(self, request, view, obj: Study) -> bool:
        return request.method in SAFE_METHODS or access.can_change(request.user, obj)


class ReaderPermission(BasePermission):
    message = "Only readers can open reader cases."

    def has_permission(self, request, view) -> bool:
        return access.is_reader(request.user)


class ResultsNotReady(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "results are available once the study is closed (quality/admin: ?interim=1)"
    default_code = "not_closed"


def _study_error(exc: services.StudyError) -> Response:
    return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)


class StudyViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Design reader studies, invite readers, open/pause/close them and read their results."""

    permission_classes = [StudyRolePermission]
    serializer_class = StudySerializer

    def get_queryset(self):
        return access.managed_studies(self.request.user).prefetch_related("arms").order_by("-created_at", "-id")

    def get_serializer_class(self):
        return {"invite": InviteSerializer}.get(self.action, StudySerializer)

    def _change_status(self, action_name: str):
        study = self.get_object()
        try:
            study = services.change_status(study, action_name)
        except services.StudyError as exc:
            return _study_error(exc)
        return Response({"status": study.status})

    @extend_schema(request=None, responses={200: StatusChangeSerializer, **STATE_CONFLICT})
    @action(detail=True, methods=["post"])
    def open(self, request, pk=None):
        """Open the study for reading (renders every case's blinded image first)."""
        return self._change_status("open")

    @extend_schema(request=None, responses={200: StatusChangeSerializer, **STATE_CONFLICT})
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        return self._change_status("pause")

    @extend_schema(request=None, responses={200: StatusChangeSerializer, **STATE_CONFLICT})
    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        """Close the study: answers are frozen and the statistics are computed."""
        return self._change_status("close")

    @extend_schema(request=InviteSerializer, responses={200: InvitedReadersSerializer})
    @action(detail=True, methods=["post"])
    def invite(self, request, pk=None):
        """Invite readers (members with the reader role); each gets an independent seeded order."""
        study = self.get_object()
        serializer = InviteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            services.invite_readers(study, serializer.validated_data["readers"], invited_by=request.user)
        except services.StudyError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response({"readers": services.reader_progress_table(study)})

    def _results_gate(self, study: Study) -> bool:
        """True for interim results; raises when results are not (yet) for this caller."""
        if study.is_closed:
            return False
        if self.request.query_params.get("interim") not in ("1", "true", "yes"):
            raise ResultsNotReady()
        if not access.can_see_interim(self.request.user, study):
            raise PermissionDenied("Interim results are for quality and admin roles.")
        return True

    @extend_schema(parameters=[INTERIM], responses={200: OpenApiTypes.OBJECT, **NOT_CLOSED})
    @action(detail=True, methods=["get"])
    def results(self, request, pk=None):
        """Statistics: per reader, kappas, MRMC reader-averaged AUC (OR-Hillis), quality, diagnoses."""
        from .results import interim_results, stored_results  # the statistics stack loads only when asked for

        study = self.get_object()
        interim = self._results_gate(study)
        return Response(interim_results(study) if interim else stored_results(study).payload)

    @extend_schema(parameters=[INTERIM], responses={(200, "text/csv"): OpenApiTypes.STR, **NOT_CLOSED})
    @action(detail=True, methods=["get"])
    def answers(self, request, pk=None):
        """Every answer as CSV (one row per reader × case × showing)."""
        from .results import answer_rows, answers_csv

        study = self.get_object()
        self._results_gate(study)
        response = HttpResponse(answers_csv(answer_rows(study)), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="study-{study.pk}-answers.csv"'
        return response


class ReaderAssignmentViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """A reader's own studies; `next` gives the case to read now."""

    permission_classes = [ReaderPermission]
    serializer_class = ReaderAssignmentSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Assignment.objects.none()
        return access.own_assignments(self.request.user).select_related("study").order_by("id")

    @extend_schema(responses={200: OpenApiTypes.OBJECT},
                   parameters=[OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH, description="assignment id")])
    @action(detail=True, methods=["get"])
    def next(self, request, pk=None):
        assignment = self.get_object()
        study = assignment.study
        body = {"status": study.status, "questions": questions_of(study),
                "progress": progress_dict(services.progress(assignment)), "case": None}
        if study.status == Study.Status.OPEN:
            showing = services.next_showing(assignment)
            if showing is not None:
                services.mark_served(showing)
                body["case"] = case_dict(showing)
        return Response(body, headers={"Cache-Control": "no-store"})


class ReaderCaseImageView(APIView):
    """The blinded image of one of the caller's cases: an uncompressed PNG of its pixels, with the same size, byte
    length and headers for every case (no ETag or Last-Modified; the URL is the showing's random token)."""

    permission_classes = [ReaderPermission]

    @extend_schema(responses={(200, CONTENT_TYPE): OpenApiTypes.BINARY, **error_responses(409, e409="the study is not open")})
    def get(self, request, token: str):
        showing = get_object_or_404(
            access.own_showings(request.user).select_related("case", "assignment__study"), token=token
        )
        study = showing.assignment.study
        if study.status != Study.Status.OPEN:
            return Response({"detail": "the study is not open"}, status=status.HTTP_409_CONFLICT)
        response = HttpResponse(blinded_image_bytes(showing.case, study), content_type=CONTENT_TYPE)
        response["Cache-Control"] = IMAGE_CACHE_CONTROL
        return response


class ReaderCaseAnswerView(APIView):
    """POST answers a case once (a repeated POST returns the stored answer, 200); PUT revises it where the
    study allows changes."""

    permission_classes = [ReaderPermission]

    def _showing(self, request, token: str):
        return get_object_or_404(
            access.own_showings(request.user).select_related("assignment__study"), token=token
        )

    def _values(self, request, study: Study):
        serializer = AnswerInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return services.parse_answer(study, serializer.validated_data)

    @extend_schema(request=AnswerInputSerializer, responses={201: OpenApiTypes.OBJECT, 200: OpenApiTypes.OBJECT, **STATE_CONFLICT})
    def post(self, request, token: str):
        showing = self._showing(request, token)
        study = showing.assignment.study
        try:
            outcome = services.submit_answer(showing, self._values(request, study))
        except services.AnswerInvalid as exc:
            return Response(exc.errors, status=status.HTTP_400_BAD_REQUEST)
        except services.StudyError as exc:
            return _study_error(exc)
        body = {"stored": outcome.created, "progress": progress_dict(services.progress(showing.assignment))}
        return Response(body, status=status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK)

    @extend_schema(request=AnswerInputSerializer, responses={200: OpenApiTypes.OBJECT, **STATE_CONFLICT})
    def put(self, request, token: str):
        showing = self._showing(request, token)
        study = showing.assignment.study
        try:
            services.change_answer(showing, self._values(request, study))
        except services.AnswerInvalid as exc:
            return Response(exc.errors, status=status.HTTP_400_BAD_REQUEST)
        except services.StudyError as exc:
            return _study_error(exc)
        return Response({"stored": True, "progress": progress_dict(services.progress(showing.assignment))})
