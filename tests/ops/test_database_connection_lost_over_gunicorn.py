"""Persistent database connections (README "Configuration": DATABASE_CONN_MAX_AGE) and a
database that drops them (a restart, a failover, an idle timeout), over real HTTP against
gunicorn as production runs it.

A reused connection is not checked before each request (DATABASE_CONN_HEALTH_CHECKS is off by
default: the check is a round trip on every request, issue 11). The request that finds its
connection gone is answered 503 with Retry-After, never 500; Django closes the broken
connection, and the next request is served on a new one."""

import http.client
from urllib.parse import urlsplit

import pytest
from django.db import connection

from tests.tam.gunicorn_portal import gunicorn_portal

pytestmark = pytest.mark.django_db(transaction=True)


def empty_post(url: str) -> http.client.HTTPResponse:
    parts = urlsplit(url)
    client = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    client.request("POST", "/tam", body=b"", headers={"Accept": "application/teep+cbor"})
    response = client.getresponse()
    response.read()
    client.close()
    return response


def drop_the_portals_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def test_a_dropped_connection_costs_one_retry_later_answer_then_the_portal_serves(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: gunicorn reads the test database from another process")
    with gunicorn_portal(tmp_path / "gunicorn.log", DATABASE_CONN_MAX_AGE="600") as url:
        assert empty_post(url).status == 200
        assert drop_the_portals_connections() >= 1

        first = empty_post(url)
        second = empty_post(url)

    assert first.status == 503, (tmp_path / "gunicorn.log").read_text()[-2000:]
    assert int(first.getheader("Retry-After")) > 0
    assert second.status == 200
