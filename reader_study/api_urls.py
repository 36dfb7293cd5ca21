"""Reader-study API routes (included under /api/ next to auditor.api.urls; names prefixed to stay distinct)."""
from django.urls import include, path
from rest_framework.routers import SimpleRouter

from . import api

router = SimpleRouter()
router.register("reader-studies", api.StudyViewSet, basename="readerstudy")
router.register("reader/assignments", api.ReaderAssignmentViewSet, basename="readerassignment")

urlpatterns = [
    path("reader/cases/<str:token>/image/", api.ReaderCaseImageView.as_view(), name="readercase-image"),
    path("reader/cases/<str:token>/answer/", api.ReaderCaseAnswerView.as_view(), name="readercase-answer"),
    path("", include(router.urls)),
]
