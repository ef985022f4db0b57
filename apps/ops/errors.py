"""The last word on an uncaught exception (urls.handler500), for every endpoint: admin,
accounts, /payloads, /api/v1 (DRF re-raises what it does not know) and failures inside
middleware (e.g. loading a session). /tam maps its own failures (apps/tam/views.py) with the
same classification.

Django logs the exception with its traceback (logger django.request) before calling this; the
body never carries it.
"""

import sys

from django.http import HttpResponse, JsonResponse

from apps.ops import metrics
from apps.ops.faults import BACKEND_RETRY_AFTER_SECONDS, unavailable_backend

API_PREFIX = "/api/"
UNAVAILABLE = "Service temporarily unavailable: a backend is unreachable. Retry later."
FAILED = "Server error. The details are in the server log."


def server_error(request):
    """handler500. Called inside Django's `except` block, so sys.exc_info() is the failure."""
    unavailable = unavailable_backend(sys.exc_info()[1])
    status, message = (503, UNAVAILABLE) if unavailable else (500, FAILED)
    path = request.path
    if path.startswith(API_PREFIX):
        response = JsonResponse({"detail": message}, status=status)
    elif path.startswith("/tam"):
        response = HttpResponse(status=status)  # agents get no body (DESIGN.md's table)
        del response["Content-Type"]
    else:
        response = HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
    if unavailable:
        response["Retry-After"] = str(BACKEND_RETRY_AFTER_SECONDS)
        metrics.count_backend_unavailable(unavailable)
    return response
