from django.urls import path

from auditor.web import audit_views, compare_views, detector_views, image_views, report_views, training_views, views

app_name = "web"
urlpatterns = [
    path("", views.home, name="home"),
    path("sets/", views.imageset_list, name="imageset-list"),
    path("sets/<int:pk>/", views.imageset_detail, name="imageset-detail"),
    path("sets/<int:pk>/images/", image_views.imageset_images, name="imageset-images"),
    path("sets/<int:pk>/upload/", views.imageset_upload, name="imageset-upload"),
    path("images/<int:pk>/", image_views.image_detail, name="image-detail"),
    path("images/<int:pk>/thumbnail/<int:size>/", image_views.image_thumbnail, name="image-thumbnail"),
    path("jobs/<uuid:job_id>/", views.job_status, name="job-status"),
    path("sets/<int:pk>/train/", training_views.start_training, name="imageset-train"),
    path("audits/", audit_views.audit_list, name="audit-list"),
    path("audits/compare/", compare_views.audit_compare, name="audit-compare"),
    path("audits/<int:pk>/", audit_views.audit_detail, name="audit-detail"),
    path("audits/<int:pk>/run/", audit_views.audit_run, name="audit-run"),
    path("reports/<uuid:pk>/pdf/", audit_views.report_download, {"which": "pdf"}, name="report-download"),
    path("reports/<uuid:pk>/json/", audit_views.report_download, {"which": "json"}, name="report-download-json"),
    path("reports/<uuid:pk>/approve/", audit_views.report_approve, name="report-approve"),
    path("reports/<uuid:pk>/charts/<int:index>/", report_views.report_chart, name="report-chart"),
    path("reports/<uuid:pk>/pictures/<int:index>/", report_views.report_picture, name="report-picture"),
    path("generators/<int:pk>/", training_views.generator_detail, name="generator-detail"),
    path("generators/<int:pk>/cancel/", training_views.generator_cancel, name="generator-cancel"),
    path("generators/<int:pk>/sample/", training_views.generator_sample, name="generator-sample"),
    path("detectors/", detector_views.detector_list, name="detector-list"),
    path("detectors/<int:pk>/", detector_views.detector_detail, name="detector-detail"),
    path("detectors/<int:pk>/cancel/", detector_views.detector_cancel, name="detector-cancel"),
    path("detectors/<int:pk>/score/", detector_views.detector_score, name="detector-score"),
    path("detectors/<int:pk>/scorings/<int:scoring_pk>/", detector_views.detector_scoring, name="detector-scoring"),
]
