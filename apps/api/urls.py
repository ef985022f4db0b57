"""/api/v1/: the management API. The TEEP endpoint (/tam) is not part of it."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from apps.api import views

app_name = "api"

router = DefaultRouter()
router.include_root_view = False
router.register("devices", views.DeviceViewSet, basename="device")
router.register("components", views.TrustedComponentViewSet, basename="component")
router.register("versions", views.ComponentVersionViewSet, basename="version")
router.register("audit", views.AuditEventViewSet, basename="audit")
router.register("device-groups", views.DeviceGroupViewSet, basename="device-group")
router.register("policies", views.PolicyViewSet, basename="policy")
router.register("queued-actions", views.QueuedActionViewSet, basename="queued-action")
router.register("compromise", views.CompromiseViewSet, basename="compromise")

urlpatterns = [
    path("", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's initializer as a script file, not inline: the
    # portal's Content-Security-Policy allows no inline script.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
]
