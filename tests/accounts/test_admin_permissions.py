"""Every admin page, per role: anonymous goes to the login page, a role without the
permission gets 403, a permitted role gets the page."""

import pytest
from django.urls import reverse

from apps.accounts import roles
from apps.components.models import ComponentVersion
from tests.accounts.helpers import ANONYMOUS, ROLES_UNDER_TEST, client_for, expected, make_user
from tests.components.factories import TrustedComponentFactory

V, OP, S = roles.VIEWER, roles.OPERATOR, roles.SECURITY_OFFICER
EVERY_ROLE = {V: 200, OP: 200, S: 200}

# url name -> status per role (anonymous: always a redirect to the login page)
ADMIN_PAGES = {
    "admin:index": EVERY_ROLE,
    "admin:devices_device_changelist": EVERY_ROLE,
    "admin:devices_device_register": {V: 403, OP: 200, S: 200},
    "admin:devices_device_tam_keys": EVERY_ROLE,
    "admin:components_trustedcomponent_changelist": EVERY_ROLE,
    "admin:components_trustedcomponent_add": {V: 403, OP: 200, S: 200},
    "admin:components_componentversion_changelist": EVERY_ROLE,
    "admin:components_componentversion_upload": {V: 403, OP: 200, S: 200},
    "admin:components_tcsigner_changelist": EVERY_ROLE,
    "admin:components_tcsigner_add": {V: 403, OP: 403, S: 200},
    "admin:attestation_attestationkey_register": {V: 403, OP: 403, S: 200},
    "admin:audit_auditevent_changelist": EVERY_ROLE,
    "admin:audit_auditevent_export": EVERY_ROLE,
    "admin:auth_user_changelist": {V: 403, OP: 403, S: 403},
    "admin:api_apitoken_changelist": {V: 403, OP: 403, S: 403},
}


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES_UNDER_TEST)
@pytest.mark.parametrize("url_name", ADMIN_PAGES)
def test_admin_page_per_role(url_name, role):
    client, _ = client_for(role)
    response = client.get(reverse(url_name))
    if role == ANONYMOUS:
        assert response.status_code == 302 and reverse("admin:login") in response["Location"]
    else:
        assert response.status_code == expected(ADMIN_PAGES[url_name], role), response


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url_name",
    [
        "admin:auth_user_changelist",
        "admin:auth_group_changelist",
        "admin:api_apitoken_changelist",
        "admin:otp_totp_totpdevice_changelist",
    ],
)
def test_administrator_manages_users_tokens_and_second_factors(url_name):
    client, _ = client_for(roles.ADMINISTRATOR)
    assert client.get(reverse(url_name)).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url_name",
    [
        "admin:devices_device_tam_keys",
        "admin:devices_device_changelist",
        "admin:audit_auditevent_export",
    ],
)
def test_staff_without_a_role_sees_nothing(client, url_name):
    client.force_login(make_user(None, is_staff=True))
    assert client.get(reverse(url_name)).status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize("role, released", [(V, False), (OP, True)])
def test_release_action_needs_the_change_permission(role, released):
    component = TrustedComponentFactory()
    version = ComponentVersion.objects.create(
        component=component,
        version_label="1",
        sequence_number=1,
        envelope=b"\xa0",
        envelope_sha256="0" * 64,
        delivery="uri",
    )
    client, _ = client_for(role)
    client.post(
        reverse("admin:components_componentversion_changelist"),
        {"action": "release_selected", "_selected_action": [version.pk]},
    )
    version.refresh_from_db()
    assert (version.state == ComponentVersion.State.RELEASED) is released
