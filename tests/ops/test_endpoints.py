"""/healthz (the process is up), /readyz (database, broker and cache answer) and the request
id every response carries."""

import json

import pytest
from django.test import Client

from .faults import database_unreachable, unreachable_redis_url


@pytest.fixture
def probe():
    """A probe as an orchestrator sends it: by address, over plain HTTP."""
    return Client(raise_request_exception=False, HTTP_HOST="10.1.2.3:8000")


@pytest.fixture
def production_like(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["tam.example.com"]


def body(response) -> dict:
    return json.loads(response.content)


def test_healthz_answers_without_touching_the_database(probe, production_like):
    # No django_db mark: any database access would raise here.
    response = probe.get("/healthz")
    assert response.status_code == 200 and body(response) == {"status": "ok"}


@pytest.mark.django_db(transaction=True)
def test_healthz_stays_up_while_the_database_is_down(probe):
    with database_unreachable():
        assert probe.get("/healthz").status_code == 200


@pytest.mark.django_db
def test_readyz_when_every_backend_answers(probe, production_like, settings):
    settings.CELERY_BROKER_URL = ""  # tasks in-process: nothing to reach
    response = probe.get("/readyz")
    assert response.status_code == 200
    assert body(response) == {
        "status": "ready",
        "checks": {"database": "ok", "broker": "not configured", "cache": "ok"},
    }


@pytest.mark.django_db(transaction=True)
def test_readyz_fails_naming_the_database_when_postgresql_is_unreachable(probe, settings):
    settings.CELERY_BROKER_URL = ""
    with database_unreachable():
        response = probe.get("/readyz")
    assert response.status_code == 503 and int(response["Retry-After"]) > 0
    assert body(response)["failed"] == ["database"]
    assert body(response)["checks"]["database"] == "unreachable"
    assert probe.get("/readyz").status_code == 200  # and recovers with the database


@pytest.mark.django_db
def test_readyz_fails_naming_the_broker(probe, settings):
    settings.CELERY_BROKER_URL = unreachable_redis_url()
    response = probe.get("/readyz")
    assert response.status_code == 503 and body(response)["failed"] == ["broker"]


@pytest.mark.django_db
def test_readyz_fails_naming_the_cache(probe, settings):
    settings.CELERY_BROKER_URL = ""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": unreachable_redis_url(),
                                   "OPTIONS": {"socket_connect_timeout": 1}}}
    response = probe.get("/readyz")
    assert response.status_code == 503 and body(response)["failed"] == ["cache"]


@pytest.mark.django_db
def test_readyz_with_the_real_redis_broker_and_cache(probe, settings):
    import os

    broker = os.environ.get("CELERY_BROKER_URL", "")
    if not broker.startswith("redis://"):
        pytest.skip("no Redis broker configured (CELERY_BROKER_URL)")
    settings.CELERY_BROKER_URL = broker
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": broker.rsplit("/", 1)[0] + "/13"}}
    response = probe.get("/readyz")
    assert response.status_code == 200, body(response)
    assert body(response)["checks"] == {"database": "ok", "broker": "ok", "cache": "ok"}


def test_every_response_carries_a_request_id(client):
    first = client.get("/healthz")["X-Request-ID"]
    second = client.get("/healthz")["X-Request-ID"]
    assert len(first) == 32 and first != second
    assert client.get("/healthz", HTTP_X_REQUEST_ID="from-the-proxy-1")["X-Request-ID"] == (
        "from-the-proxy-1"
    )
    assert client.get("/healthz", HTTP_X_REQUEST_ID="<script>")["X-Request-ID"] != "<script>"
