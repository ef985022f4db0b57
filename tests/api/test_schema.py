"""The OpenAPI schema and its docs page; schemathesis fuzzes every operation of the schema
through WSGI as an administrator and must never see a 5xx."""

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from apps.accounts import roles
from apps.components.models import ComponentVersion
from apps.devices.models import Device
from tests.api.conftest import token_client
from tests.components.factories import TrustedComponentFactory


@pytest.mark.django_db
def test_schema_documents_the_management_api_only():
    client, _ = token_client(roles.VIEWER)
    response = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {
        "/api/v1/devices/",
        "/api/v1/versions/binary/",
        "/api/v1/audit/",
        "/api/v1/policies/",
        "/api/v1/queued-actions/",
        "/api/v1/compromise/",
    } <= set(paths)
    assert all(path.startswith("/api/v1/") for path in paths)  # no /tam, no /payloads
    assert "tokenAuth" in response.json()["components"]["securitySchemes"]


@pytest.mark.django_db
def test_docs_page_is_served_from_our_static_files():
    client, _ = token_client(roles.VIEWER)
    page = client.get("/api/v1/docs/").content.decode()
    assert "swagger-ui" in page
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page
    assert "cdn" not in page.lower() and "unpkg" not in page.lower()


@pytest.mark.django_db
def test_schema_and_docs_need_a_login(client):
    assert client.get("/api/v1/schema/").status_code == 401
    assert client.get("/api/v1/docs/").status_code == 401


@pytest.fixture
def admin_token(db, media_root):
    _, user = token_client(roles.ADMINISTRATOR, username="fuzz-admin")
    from apps.api.services import create_token

    component = TrustedComponentFactory()
    ComponentVersion.objects.create(
        component=component,
        version_label="1",
        sequence_number=1,
        envelope=b"\xa0",
        envelope_sha256="0" * 64,
        delivery="uri",
    )
    Device.objects.create(kid="ab" * 32, public_key=b"\xa0", name="lab-1")
    return create_token(user, acting_user=None)[1]


EXAMPLES_PER_OPERATION = 15


@pytest.fixture
def wsgi_app():
    """Django's WSGI application on the test's database connection: like Django's test
    client, keep the request signals from closing it (on PostgreSQL that would end the
    test's transaction)."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_no_operation_answers_a_server_error(admin_token, wsgi_app):
    """Driven by hand rather than with schemathesis' pytest plugin: its lazy loader reads
    pytest internals that pytest 9 no longer has (`request.node._nodeid`)."""
    headers = {"Authorization": f"Token {admin_token}"}
    schema = schemathesis.openapi.from_wsgi(
        "/api/v1/schema/",
        wsgi_app,
        headers={**headers, "Accept": "application/vnd.oai.openapi+json"},
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 36  # with POST components/, devices/{id}/retire/ and /unretire/
    failures, statuses = [], []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case):
            response = case.call(headers=headers)
            statuses.append(response.status_code)
            case.validate_response(response, checks=[not_a_server_error])

        try:
            fuzz()
        except (Exception, BaseExceptionGroup) as exc:  # report every failing operation
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
    # The fuzzing really reached the views: successes and refusals both.
    assert len(statuses) >= 5 * len(operations)
    assert {200, 400, 404} <= set(statuses), sorted(set(statuses))
