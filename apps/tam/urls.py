from django.conf import settings
from django.urls import path

from apps.tam.views import TeepView
from apps.teep.wire.numbering import CURRENT, PRE_26

# DESIGN.md "Wire numbering": the endpoint selects the numbering, never the bytes.
base = getattr(settings, "TEEP_PATH", "tam").strip("/")
urlpatterns = [
    path(base, TeepView.as_view(numbering=CURRENT), name="teep"),
    path(f"{base}/draft-25", TeepView.as_view(numbering=PRE_26), name="teep-draft-25"),
]
# The paths (request.path_info) agents POST to: TEEP_ALLOWED_HOSTS applies to these only.
TEEP_PATHS = frozenset(f"/{pattern.pattern}" for pattern in urlpatterns)
