from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "tam-portal: Trusted Application Manager"
admin.site.site_title = "tam-portal"
admin.site.index_title = "Fleet overview"
# No public site beside the console: no "View site" link (it led to a 404).
admin.site.site_url = None

# Every uncaught failure: 503 with Retry-After when a backend is unreachable, else 500
# (apps/ops/errors.py). /tam maps its own failures the same way.
handler500 = "apps.ops.errors.server_error"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("apps.accounts.urls")),
    path("api/v1/", include("apps.api.urls")),
    path("payloads/", include("apps.components.urls")),
    path("", include("apps.tam.urls")),
]
