from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from auditor.api import audits, detectors, training, views

router = DefaultRouter()
router.register("image-sets", views.ImageSetViewSet, basename="imageset")
router.register("images", views.ImageViewSet, basename="image")
router.register("ingest-errors", views.IngestErrorViewSet, basename="ingesterror")
router.register("ingest-jobs", views.IngestJobViewSet, basename="ingestjob")
router.register("generator-runs", training.GeneratorRunViewSet, basename="generatorrun")
router.register("detector-runs", detectors.DetectorRunViewSet, basename="detectorrun")
router.register("audits", audits.AuditViewSet, basename="audit")
router.register("reports", audits.ReportViewSet, basename="report")

urlpatterns = [
    path("token/", views.ObtainTokenView.as_view(), name="api-token"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include(router.urls)),
]
