from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/", include("auditor.api.urls")),
    path("api/", include("reader_study.api_urls")),
    path("studies/", include("reader_study.urls")),
    path("", include("auditor.web.urls")),
]
