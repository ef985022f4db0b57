"""Every API endpoint, per role: anonymous 401, a role without the permission 403, a
permitted role reaches the view (its answer may still be a 400 for this empty input)."""

import pytest

from apps.accounts import roles
from apps.audit.services import record_system_event
from apps.components.models import ComponentVersion
from apps.devices.models import Device
from tests.accounts.helpers import ANONYMOUS, ROLES_UNDER_TEST, client_for
from tests.api.conftest import token_client
from tests.components.factories import TrustedComponentFactory

V, OP, S = roles.VIEWER, roles.OPERATOR, roles.SECURITY_OFFICER
READERS, OPERATORS, OFFICERS = {V, OP, S}, {OP, S}, {S}

ENDPOINTS = [
    ("get", "/api/v1/devices/", READERS),
    ("get", "/api/v1/devices/{device}/", READERS),
    ("post", "/api/v1/devices/", OPERATORS),
    ("post", "/api/v1/devices/{device}/retire/", OPERATORS),
    ("post", "/api/v1/devices/{device}/unretire/", OPERATORS),
    ("get", "/api/v1/components/", READERS),
    ("get", "/api/v1/components/{component}/", READERS),
    ("post", "/api/v1/components/", OPERATORS),
    ("get", "/api/v1/versions/", READERS),
    ("get", "/api/v1/versions/{version}/", READERS),
    ("post", "/api/v1/versions/binary/", OPERATORS),
    ("post", "/api/v1/versions/envelope/", OPERATORS),
    ("post", "/api/v1/versions/{version}/release/", OPERATORS),
    ("post", "/api/v1/versions/{version}/withdraw/", OPERATORS),
    ("get", "/api/v1/audit/", READERS),
    ("get", "/api/v1/audit/{event}/", READERS),
    ("get", "/api/v1/policies/", READERS),
    ("post", "/api/v1/policies/", OPERATORS),
    ("get", "/api/v1/queued-actions/", READERS),
    ("post", "/api/v1/queued-actions/", OPERATORS),
    ("get", "/api/v1/compromise/", READERS),
    ("post", "/api/v1/compromise/", OFFICERS),
    ("get", "/api/v1/schema/", READERS),
]


@pytest.fixture
def objects(db):
    component = TrustedComponentFactory()
    version = ComponentVersion.objects.create(
        component=component,
        version_label="1",
        sequence_number=1,
        envelope=b"\xa0",
        envelope_sha256="0" * 64,
        delivery="uri",
    )
    device = Device.objects.create(kid="ab" * 32, public_key=b"\xa0", name="lab-1")
    event = record_system_event(action="test.event")
    return {
        "component": component.pk,
        "version": version.pk,
        "device": device.pk,
        "event": event.pk,
    }


def call(client, method, url, objects):
    return getattr(client, method)(url.format(**objects), {}, content_type="application/json")


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES_UNDER_TEST)
@pytest.mark.parametrize(
    "method, url, allowed", ENDPOINTS, ids=[f"{m} {u}" for m, u, _ in ENDPOINTS]
)
def test_endpoint_per_role_with_a_token(objects, method, url, allowed, role):
    client, _ = token_client(role)
    status = call(client, method, url, objects).status_code
    if role == ANONYMOUS:
        assert status == 401
    elif role in allowed:
        assert status not in (401, 403, 404, 405), status
    else:
        assert status == 403


@pytest.mark.django_db
@pytest.mark.parametrize("role", [V, OP])
def test_session_users_get_the_same_answers(objects, role):
    client, _ = client_for(role)
    assert client.get("/api/v1/versions/").status_code == 200
    expected = 400 if role == OP else 403  # an empty body: refused by the view, or by the role
    assert (
        call(client, "post", "/api/v1/versions/{version}/withdraw/", objects).status_code
        == expected
    )


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["put", "patch", "delete"])
@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/audit/{event}/",
        "/api/v1/devices/{device}/",
        "/api/v1/versions/{version}/",
        "/api/v1/components/{component}/",
    ],
)
def test_nothing_is_changed_or_deleted_through_the_api(objects, method, url):
    client, _ = token_client(roles.ADMINISTRATOR)
    assert call(client, method, url, objects).status_code == 405
