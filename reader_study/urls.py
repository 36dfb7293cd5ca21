from django.urls import path

from .views import manage, reader

app_name = "reader_study"
urlpatterns = [
    path("", reader.home, name="home"),
    path("profile/", reader.profile, name="profile"),
    path("<int:study_id>/read/", reader.read, name="read"),
    path("<int:study_id>/read/<str:token>/", reader.revisit, name="revisit"),
    path("manage/", manage.study_list, name="study-list"),
    path("manage/new/", manage.study_create, name="study-create"),
    path("manage/<int:pk>/", manage.study_detail, name="study-detail"),
    path("manage/<int:pk>/status/", manage.study_status, name="study-status"),
    path("manage/<int:pk>/invite/", manage.study_invite, name="study-invite"),
    path("manage/<int:pk>/results/", manage.study_results, name="study-results"),
]
