"""/api/v1/: the management API. The TEEP endpoint (/tam) is not part of it."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from apps.api import views

app_name = "api"

router = DefaultRouter()
router.include_root_view = False
router.register("devices", views.DeviceViewSet, basename="device")
router.register("components", views.TrustedComponentViewSet, basename="component")
router.register("versions", views.ComponentVersionViewSet, basename="version")
router.register("audit", views.AuditEventViewSet, basename="audit")

urlpatterns = [
    path("", include(router.urls)),
    path("policies/", views.PoliciesView.as_view(), name="policies"),
    path("queued-actions/", views.QueuedActionsView.as_view(), name="queued-actions"),
    path("compromise/", views.CompromiseView.as_view(), name="compromise"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
]
