"""/healthz, /readyz and /metrics: for load balancers, orchestrators and Prometheus.

They are answered by the first middleware (apps/ops/middleware.py), before host validation
and the HTTPS redirect, because probes and scrapers address each process directly (by IP,
over plain HTTP, inside the deployment); they build no URLs and render no pages, so the Host
header does not matter to them. The reverse proxy does not pass /metrics on (README).

/healthz  the process is up and serving; touches no backend (a liveness probe)
/readyz   database, broker and cache answer; else 503 + Retry-After and a JSON body naming
          what failed (a readiness probe: take the process out of the load balancer)
/metrics  Prometheus text, only with METRICS_ENABLED; with METRICS_TOKEN set, only for
          `Authorization: Bearer <token>`
"""

from __future__ import annotations

import hmac
import logging

from django.conf import settings
from django.http import HttpResponse, HttpResponseNotFound, JsonResponse

from apps.ops import metrics
from apps.ops.faults import BACKEND_RETRY_AFTER_SECONDS
from apps.ops.metrics import redis_client

logger = logging.getLogger(__name__)

NOT_CONFIGURED = "not configured"
PROBE_TIMEOUT_SECONDS = 2


def healthz(request):
    return JsonResponse({"status": "ok"})


def readyz(request):
    checks = {"database": _check_database(), "broker": _check_broker(), "cache": _check_cache()}
    failed = [name for name, state in checks.items() if state not in ("ok", NOT_CONFIGURED)]
    if failed:
        response = JsonResponse(
            {"status": "unavailable", "failed": failed, "checks": checks}, status=503
        )
        response["Retry-After"] = str(BACKEND_RETRY_AFTER_SECONDS)
    else:
        response = JsonResponse({"status": "ready", "checks": checks})
    response["Cache-Control"] = "no-store"
    return response


def metrics_view(request):
    if not settings.METRICS_ENABLED:
        return HttpResponseNotFound()
    if settings.METRICS_TOKEN:
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            credentials.strip().encode(), settings.METRICS_TOKEN.encode()
        ):
            response = HttpResponse(status=401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    from prometheus_client import CONTENT_TYPE_LATEST

    return HttpResponse(metrics.render(), content_type=CONTENT_TYPE_LATEST)


ENDPOINTS = {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics_view}


# --- the checks: "ok", NOT_CONFIGURED, or "unreachable" (the detail goes to the log) ---------


def _failed(backend: str, exc: Exception) -> str:
    logger.warning("readiness: %s unreachable: %s: %s", backend, exc.__class__.__name__, exc)
    return "unreachable"


def _check_database() -> str:
    from django.db import connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        connection.close_if_unusable_or_obsolete()
        return _failed("database", exc)
    return "ok"


def _check_broker() -> str:
    url = settings.CELERY_BROKER_URL
    if not url:
        return NOT_CONFIGURED  # tasks run in-process (the embedded default)
    try:
        if url.startswith(("redis://", "rediss://")):
            redis_client(url, PROBE_TIMEOUT_SECONDS).ping()
        else:
            from tam_portal.celery import app

            with app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=PROBE_TIMEOUT_SECONDS)
    except Exception as exc:
        return _failed("broker", exc)
    return "ok"


def _check_cache() -> str:
    from django.core.cache import cache

    try:
        cache.set("readyz-probe", 1, timeout=10)
        if cache.get("readyz-probe") != 1:
            raise RuntimeError("the cache did not return what was just stored")
    except Exception as exc:
        return _failed("cache", exc)
    return "ok"
