"""Middleware of the operations app (order in settings.MIDDLEWARE, first to last):

RequestIdMiddleware           gives every request an id (X-Request-ID in and out) for the logs
OpsEndpointsMiddleware        answers /healthz, /readyz, /metrics (apps/ops/endpoints.py)
ContentSecurityPolicyMiddleware  the portal's CSP on every response that sets none itself
"""

from __future__ import annotations

import re
import uuid

from django.conf import settings

from apps.ops.endpoints import ENDPOINTS
from apps.ops.logs import request_id_var

# An id a client or the proxy sent is kept if it looks like one (nginx's $request_id does).
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        offered = request.headers.get("X-Request-ID", "")
        request.id = offered if _REQUEST_ID.match(offered) else uuid.uuid4().hex
        token = request_id_var.set(request.id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = request.id
        return response


class OpsEndpointsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        endpoint = ENDPOINTS.get(request.path_info)
        if endpoint is not None and request.method in ("GET", "HEAD"):
            return endpoint(request)
        return self.get_response(request)


class ContentSecurityPolicyMiddleware:
    """Django 5.2 has no CSP of its own. The TEEP endpoint sets its stricter one
    (default-src 'none'), which is kept."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = settings.CONTENT_SECURITY_POLICY
        return response
