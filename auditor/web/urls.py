from django.urls import path

from . import views

app_name = "web"
urlpatterns = [
    path("", views.home, name="home"),
    path("sets/", views.imageset_list, name="imageset-list"),
    path("sets/<int:pk>/", views.imageset_detail, name="imageset-detail"),
    path("sets/<int:pk>/upload/", views.imageset_upload, name="imageset-upload"),
    path("jobs/<uuid:job_id>/", views.job_status, name="job-status"),
]
