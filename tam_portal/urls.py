from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("payloads/", include("apps.components.urls")),
    path("", include("apps.teep.urls")),
]
