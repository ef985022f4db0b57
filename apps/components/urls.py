from django.urls import re_path

from apps.components import views

app_name = "components"

urlpatterns = [
    # The digest is the payload's SHA-256 (= the manifest's image-digest and the ETag).
    re_path(
        r"^(?P<digest>[0-9A-Fa-f]{64})/(?P<filename>[A-Za-z0-9._-]{1,100})$",
        views.payload,
        name="payload",
    ),
]
