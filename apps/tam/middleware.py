"""Which Host headers the TEEP endpoints admit, and a record of those they refuse.

Django checks the Host in request.get_host() against ALLOWED_HOSTS (CommonMiddleware calls it
for every request) and answers a refused one with an HTML 400 that only its log mentions,
without the path. Agents in the field may send a fixed Host whatever the TAM's address
(teep-device sends "Host: example.com"). Their requests carry no cookie or session, and the
TEEP view builds no URL from the Host (payload URIs come from TAM_PUBLIC_BASE_URL), so on the
TEEP paths, and there only, a Host that matches TEEP_ALLOWED_HOSTS is admitted as well.

This middleware sits before SecurityMiddleware and CommonMiddleware (settings.MIDDLEWARE), so
it sees the Host before Django refuses it. On a TEEP path:
- a Host of ALLOWED_HOSTS: nothing changes;
- a Host of TEEP_ALLOWED_HOSTS only: the request goes on through the same middleware as every
  agent's, with request.get_host() answering that Host for this request;
- any other Host: 400 with no body (what agents get instead of a page), a log line with the
  host and the path, and an audit row (outcome "dropped"), at most
  REFUSED_HOST_AUDITS_PER_MINUTE a minute across the processes sharing the cache, so a flood
  of made-up hosts cannot fill the append-only audit trail (the log line is always written).
Every other path (admin, API, payloads) is left to Django: TEEP_ALLOWED_HOSTS never widens it.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import DisallowedHost
from django.http import HttpResponse
from django.http.request import split_domain_port, validate_host

from apps.audit.services import record_exchange
from apps.ops import metrics
from apps.ops.clientip import client_ip
from apps.ops.faults import unavailable_backend
from apps.tam import urls as teep_urls
from apps.tam.urls import TEEP_PATHS

logger = logging.getLogger(__name__)

REFUSED_HOST_AUDITS_PER_MINUTE = 20
MAX_HOST_SHOWN = 100


class TeepHostMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info not in TEEP_PATHS:
            return self.get_response(request)
        try:
            request.get_host()
        except DisallowedHost:
            host = request.META.get("HTTP_HOST", "")
            if not teep_admits(host):
                return refuse(request, host)
            # What Django's own check would return for an admitted host, for this request only.
            request.get_host = lambda: host
        return self.get_response(request)


def teep_admits(host: str) -> bool:
    """Django's ALLOWED_HOSTS rules ("*", ".example.com", exact names) on TEEP_ALLOWED_HOSTS."""
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, settings.TEEP_ALLOWED_HOSTS)


def refuse(request, host: str) -> HttpResponse:
    shown = host[:MAX_HOST_SHOWN]
    source_ip = client_ip(request)
    reason = (
        f"Host {shown!r} not admitted for {request.path_info}"
        " (neither ALLOWED_HOSTS nor TEEP_ALLOWED_HOSTS)"
    )
    logger.warning("TEEP request refused: %s, %s from %s", reason, request.method, source_ip)
    declared = request.META.get("CONTENT_LENGTH") or "0"
    action = "teep.connect" if declared == "0" else "teep.unknown"
    if _within_audit_budget():
        try:
            record_exchange(
                action=action,
                outcome="dropped",
                reason=reason,
                source_ip=source_ip,
                detail={
                    "host": shown,
                    "path": request.path_info,
                    "method": request.method,
                    "in": "unread",
                },
            )
        except Exception as exc:
            if unavailable_backend(exc) is None:
                raise
            logger.warning("refused Host not audited: database unreachable")
    else:
        metrics.count_exchange(
            message=action.removeprefix("teep."), outcome="dropped", reason=reason
        )
    response = HttpResponse(status=400)
    del response["Content-Type"]
    return response


def _within_audit_budget() -> bool:
    """Counts one refusal in this minute's window of the shared cache; False past the budget,
    or when the cache cannot count (then nothing is audited: a flood must not reach the table)."""
    window = int(time.time()) // 60
    key = f"teep-refused-host-audits:{window}"
    try:
        if cache.add(key, 1, timeout=61):
            return True
        return cache.incr(key) <= REFUSED_HOST_AUDITS_PER_MINUTE
    except ValueError:  # the window's key expired between add and incr
        return True
    except Exception as exc:
        if unavailable_backend(exc) is None:
            raise
        return False


class TeepLaneMiddleware:
    """TEEP requests go straight to the TEEP view from here; everything after this middleware
    in settings.MIDDLEWARE (sessions, CSRF, login, second factor, lockout, messages, frame
    options, static files, the portal's CSP) serves the portal's pages and has nothing to do
    with a signed CBOR exchange, but cost most of an empty POST's CPU (issue 11).

    What a TEEP request still passes, before this one: the request id, the ops endpoints,
    the TEEP Host check (TeepHostMiddleware), SecurityMiddleware (HTTPS redirect, HSTS).
    The view handles its own errors (DRF's handle_exception: DESIGN.md's status codes);
    anything it lets through still reaches Django's handler500 through this middleware's
    exception wrapper. The answer gets its Content-Length here, as CommonMiddleware would
    give it (none on a 204), so gunicorn never sends a TEEP answer chunked."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.views = {f"/{pattern.pattern}": pattern.callback for pattern in teep_urls.urlpatterns}

    def __call__(self, request):
        view = self.views.get(request.path_info)
        if view is None:
            return self.get_response(request)
        response = view(request)
        if response.status_code not in (204, 304) and not response.streaming \
                and not response.has_header("Content-Length"):  # RFC 9110 8.6: none on a 204
            response.headers["Content-Length"] = str(len(response.content))
        return response
