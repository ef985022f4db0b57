"""TEEP over HTTP: every answer of DESIGN.md's table, exactly (otrp-over-http 4, 6)."""

import pytest
from django.db import OperationalError

from apps.audit.models import AuditEvent
from apps.tam import engine
from apps.teep.wire import cose, messages
from apps.teep.wire.numbering import PRE_26

pytestmark = pytest.mark.django_db

TEEP = "application/teep+cbor"


def post(client, body=b"", path="/tam", content_type=TEEP, **headers):
    return client.post(path, data=body, content_type=content_type, HTTP_ACCEPT=TEEP, **headers)


def test_empty_post_gets_a_signed_query_request_with_the_mandated_headers(client):
    response = post(client)
    assert response.status_code == 200
    assert response["Content-Type"] == TEEP
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "default-src 'none'"
    assert response["Referrer-Policy"] == "no-referrer"
    assert "Cache-Control" not in response
    assert not response.cookies
    request = messages.decode(cose.parse(response.content).payload)
    assert isinstance(request, messages.QueryRequest)


# What a TEEP answer carries, all of it: the media type and length, the headers
# otrp-over-http 4 asks for, the request id of the logs, and SecurityMiddleware's policy
# headers. Nothing of the browser-facing stack (sessions, CSRF, login, frames, messages): a
# TEEP request passes only the middleware it needs (apps/tam/middleware.py, TeepLaneMiddleware),
# which is most of its CPU cost (issue 11, bench/policy_check_server.py).
TEEP_ANSWER_HEADERS = {
    "content-type", "content-length", "x-content-type-options", "content-security-policy",
    "referrer-policy", "x-request-id", "cross-origin-opener-policy", "allow",  # Allow: POST (DRF)
}


@pytest.mark.parametrize("path", ["/tam", "/tam/draft-25"])
def test_a_teep_answer_carries_exactly_the_teep_headers(client, path):
    response = post(client, path=path)

    assert response.status_code == 200
    assert {name.lower() for name in response.headers} == TEEP_ANSWER_HEADERS
    assert int(response["Content-Length"]) == len(response.content)


def test_the_portal_pages_keep_their_browser_headers(client):
    response = client.get("/admin/login/")

    assert response["X-Frame-Options"] == "DENY"
    assert "Cookie" in response.get("Vary", "")


def test_empty_post_without_content_type_is_a_connect(client):
    response = client.generic("POST", "/tam", HTTP_ACCEPT=TEEP)
    assert response.status_code == 200


def test_draft_25_endpoint_speaks_the_earlier_numbering(client):
    response = post(client, path="/tam/draft-25")
    assert response.status_code == 200
    request = messages.decode(cose.parse(response.content).payload, PRE_26)
    assert request.token


@pytest.mark.parametrize("method", ["get", "put", "delete", "patch", "options"])
def test_other_methods_get_405_with_allow_post(client, method):
    response = getattr(client, method)("/tam")
    assert response.status_code == 405
    assert response["Allow"] == "POST"


@pytest.mark.parametrize("content_type", ["application/json", "application/teep+cose", "text/plain"])
def test_wrong_content_type_gets_415(client, content_type):
    response = post(client, b"\x84\x40\xa0\x40\x40", content_type=content_type)
    assert response.status_code == 415
    assert response.content == b""


def test_accept_excluding_teep_gets_406(client):
    response = client.post("/tam", data=b"", content_type=TEEP, HTTP_ACCEPT="application/json")
    assert response.status_code == 406


def test_body_over_the_limit_gets_413(client, settings):
    settings.TEEP_MAX_BODY_BYTES = 100
    response = post(client, b"\x00" * 101)
    assert response.status_code == 413


def test_unparseable_body_is_dropped_with_204_and_audited(client):
    response = post(client, b"\xff\xfe not cbor")
    assert response.status_code == 204
    assert response.content == b""
    event = AuditEvent.objects.latest("id")
    assert event.outcome == "dropped" and "COSE" in event.reason


def test_too_many_requests_from_one_source_gets_429_with_retry_after(client, settings):
    from django.core.cache import cache

    cache.clear()
    settings.TEEP_RATE_LIMIT_PER_SOURCE = "3/60"
    statuses = [post(client).status_code for _ in range(5)]
    assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]
    response = post(client)
    assert 1 <= int(response["Retry-After"]) <= 60
    cache.clear()


def test_database_unavailable_gets_503_with_retry_after(client, monkeypatch):
    def down(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(engine, "process_connect", down)
    response = post(client)
    assert response.status_code == 503 and int(response["Retry-After"]) > 0


def test_backend_unavailable_gets_503_with_its_retry_after(client, monkeypatch):
    def verifier_down(**kwargs):
        raise engine.TamUnavailable(17, "verifier")

    monkeypatch.setattr(engine, "process_connect", verifier_down)
    response = post(client)
    assert response.status_code == 503 and response["Retry-After"] == "17"


def test_unexpected_failure_gets_500_without_traceback(client, monkeypatch):
    def broken(**kwargs):
        raise KeyError("secret internals")

    monkeypatch.setattr(engine, "process_connect", broken)
    response = post(client)
    assert response.status_code == 500
    assert response.content == b""
