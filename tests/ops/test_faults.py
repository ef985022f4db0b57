"""What every endpoint answers when a backend fails (issue 13, DESIGN.md "the answers we
give"): an unreachable database, cache or broker is "retry later" (503 with Retry-After);
any other database error is a bug (500, detail in the log, never a traceback in the body)."""

import json
import logging

import pytest
from django.db import IntegrityError, ProgrammingError
from django.test import Client

from apps.api.services import create_token
from apps.tam import engine
from tests.accounts.helpers import make_user

from .faults import database_unreachable, unreachable_redis_url

TEEP = "application/teep+cbor"
PAYLOAD = "/payloads/" + "ab" * 32 + "/hello.ta"


def teep_post(client, body=b""):
    return client.post("/tam", data=body, content_type=TEEP, HTTP_ACCEPT=TEEP)


@pytest.fixture
def http():
    """Answers as a real server gives them (the test client would re-raise the exception)."""
    return Client(raise_request_exception=False)


@pytest.fixture
def api_client(db):
    user = make_user("viewer", username="api-viewer")
    _, raw = create_token(user, name="faults", acting_user=None)
    return Client(HTTP_AUTHORIZATION=f"Token {raw}", raise_request_exception=False)


def assert_retry_later(response):
    assert response.status_code == 503, response.content
    assert int(response["Retry-After"]) > 0
    assert b"Traceback" not in response.content and b"psycopg" not in response.content


# --- the database is unreachable -------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_database_unreachable_gives_503_on_the_teep_endpoint(http):
    with database_unreachable():
        response = teep_post(http)
    assert_retry_later(response)
    assert response.content == b""


@pytest.mark.django_db(transaction=True)
def test_database_unreachable_gives_503_on_the_payload_endpoint(http):
    with database_unreachable():
        response = http.get(PAYLOAD)
    assert_retry_later(response)


@pytest.mark.django_db(transaction=True)
def test_database_unreachable_gives_503_on_the_management_api(api_client):
    assert api_client.get("/api/v1/devices/").status_code == 200
    with database_unreachable():
        response = api_client.get("/api/v1/devices/")
    assert_retry_later(response)
    assert response["Content-Type"] == "application/json"
    assert "retry" in json.loads(response.content)["detail"].lower()


@pytest.mark.django_db(transaction=True)
def test_database_unreachable_gives_503_in_the_admin(http):
    user = make_user("operator", username="admin-operator")
    http.force_login(user)
    assert http.get("/admin/").status_code == 200
    with database_unreachable():
        response = http.get("/admin/devices/device/")
    assert_retry_later(response)


# --- other database errors are bugs: 500 ----------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("error", [IntegrityError, ProgrammingError])
def test_other_database_errors_on_the_teep_endpoint_are_500_with_the_detail_in_the_log(
    http, monkeypatch, caplog, error
):
    def broken(**kwargs):
        raise error('duplicate key value violates unique constraint "teep_teeptoken_value_key"')

    monkeypatch.setattr(engine, "process_connect", broken)
    with caplog.at_level(logging.ERROR):
        response = teep_post(http)
    assert response.status_code == 500 and "Retry-After" not in response
    assert response.content == b""
    assert any("teep_teeptoken_value_key" in (r.exc_text or "") for r in caplog.records)


@pytest.mark.django_db
def test_an_integrity_error_in_the_management_api_is_500_without_a_traceback(
    api_client, monkeypatch, caplog
):
    from apps.api import views

    def broken(*args, **kwargs):
        raise IntegrityError('null value in column "kid" violates not-null constraint')

    monkeypatch.setattr(views.DeviceViewSet, "list", broken)
    with caplog.at_level(logging.ERROR):
        response = api_client.get("/api/v1/devices/")
    assert response.status_code == 500 and "Retry-After" not in response
    assert b"Traceback" not in response.content and b"not-null" not in response.content
    assert any("not-null constraint" in (r.exc_text or "") for r in caplog.records)


@pytest.mark.django_db
def test_an_integrity_error_on_the_payload_endpoint_is_500(http, monkeypatch):
    from apps.components import views

    def broken(*args, **kwargs):
        raise IntegrityError("boom")

    monkeypatch.setattr(views, "_servable_version", broken)
    response = http.get(PAYLOAD)
    assert response.status_code == 500 and b"boom" not in response.content


# --- the cache (rate limits) and the broker are unreachable --------------------------------


@pytest.fixture
def cache_unreachable(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": unreachable_redis_url(),
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }


@pytest.mark.django_db
def test_cache_unreachable_does_not_stop_agents_rate_limits_fail_open(
    http, cache_unreachable, caplog, monkeypatch
):
    from apps.tam import ratelimit

    monkeypatch.setattr(ratelimit, "_last_warning", [0.0])
    with caplog.at_level(logging.WARNING, logger="apps.tam.ratelimit"):
        responses = [teep_post(http) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert any("rate limits are not enforced" in r.getMessage() for r in caplog.records)


@pytest.mark.django_db
def test_cache_unreachable_on_a_signed_message_is_no_500_either(http, cache_unreachable):
    from apps.teep.wire import cose, messages
    from apps.teep.wire.keys import TeepKey

    key = TeepKey.generate("p256")
    body = cose.sign1(messages.encode(messages.QueryResponse(token=b"t" * 16, tc_list=())), key, -9)
    response = teep_post(http, body)
    assert response.status_code in (200, 204)


@pytest.fixture
def broker_unreachable(celery_eager, monkeypatch):
    """Tasks are published to a Redis broker nobody answers (no retries: fail at once).
    Celery reads CELERY_BROKER_URL from the environment before its configuration."""
    app = celery_eager
    url = unreachable_redis_url()
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    saved = {k: app.conf[k] for k in ("broker_url", "task_publish_retry")}
    app.conf.update(task_always_eager=False, broker_url=url, task_publish_retry=False)
    app._pool = None
    app.amqp._producer_pool = None
    assert app.connection_for_write().as_uri().endswith(url.rsplit(":", 1)[1])
    yield app
    monkeypatch.undo()
    app.conf.update(task_always_eager=True, **saved)
    app._pool = None
    app.amqp._producer_pool = None


@pytest.mark.django_db(transaction=True)
def test_broker_unreachable_during_attestation_gives_503_not_500(http, broker_unreachable, caplog):
    from apps.attestation import services as attestation
    from apps.teep.wire import messages
    from apps.teep.wire.evidence import make_evidence
    from apps.teep.wire.keys import TeepKey
    from tests.tam.conftest import SimAgent
    from tests.tam.test_tam import connect, send

    attester = TeepKey.generate("p256")
    attestation.register_attestation_key(public_key_bytes=attester.public_pem(), name="attester")
    agent = SimAgent(key=TeepKey.generate("p256"), device=None)
    request = connect(agent)
    answer = send(agent, messages.QueryResponse(token=request.token, tc_list=()))
    challenge = agent.read(answer.body)
    payload, media_type = make_evidence(
        attester_key=attester, challenge=challenge.challenge, agent_public_key=agent.key.public(),
        ueid=b"\x01" + b"\x02" * 16, oemid=b"\x89\x48\x23", hwmodel=b"m", hwversion="1",
    )
    evidence = agent.sign(messages.QueryResponse(
        attestation_payload=payload, attestation_payload_format=media_type, tc_list=()))
    with caplog.at_level(logging.ERROR, logger="apps.tam.views"):
        response = teep_post(http, evidence)
    assert_retry_later(response)
    assert any("broker unreachable" in r.getMessage() for r in caplog.records)
