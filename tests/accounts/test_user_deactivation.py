"""Users with audit history are deactivated, never deleted (DESIGN.md decision 12).

The audit trail names its actors and is append-only, so deleting such a user would have to
change audit rows (the trigger refuses: that was a 500). The admin says why and offers
deactivation instead; users without history are deleted as usual."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from apps.accounts import roles
from apps.api.services import create_token
from apps.audit.models import AuditEvent
from apps.audit.services import record_operator_action
from tests.accounts.helpers import make_user

pytestmark = pytest.mark.django_db
User = get_user_model()


@pytest.fixture
def administrator():
    return make_user(roles.ADMINISTRATOR, username="ada-admin")


@pytest.fixture
def admin_client(administrator):
    client = Client(raise_request_exception=False)
    client.force_login(administrator)
    return client


@pytest.fixture
def alice():
    """An operator who did something: the audit trail names her."""
    user = make_user(roles.OPERATOR, username="alice")
    record_operator_action(actor=user, action="component.upload", reason="her first upload")
    return user


def delete_url(user):
    return reverse("admin:auth_user_delete", args=[user.pk])


def test_deleting_a_user_with_audit_history_explains_and_offers_deactivation(admin_client, alice):
    page = admin_client.get(delete_url(alice))
    assert page.status_code == 200
    text = page.content.decode()
    assert "audit trail" in text and "deactivate" in text.lower()
    assert reverse("admin:auth_user_deactivate", args=[alice.pk]) in text
    assert 'name="post"' not in text  # no "Yes, I'm sure" form


def test_confirming_the_delete_anyway_deletes_nothing_and_is_no_500(admin_client, alice):
    response = admin_client.post(delete_url(alice), {"post": "yes"})
    assert response.status_code == 200
    assert User.objects.filter(pk=alice.pk).exists()
    assert AuditEvent.objects.filter(actor=alice, reason="her first upload").exists()


def test_bulk_delete_with_such_a_user_deletes_nothing_and_is_no_500(admin_client, alice):
    bob = make_user(username="bob")
    response = admin_client.post(
        reverse("admin:auth_user_changelist"),
        {"action": "delete_selected", "_selected_action": [alice.pk, bob.pk], "post": "yes"},
    )
    assert response.status_code == 200
    assert "audit trail" in response.content.decode()
    assert User.objects.filter(pk__in=[alice.pk, bob.pk]).count() == 2


def test_deactivation_keeps_the_user_and_the_history_and_is_audited(
    admin_client, administrator, alice
):
    _, raw_token = create_token(alice, name="scripts", acting_user=None)
    response = admin_client.post(reverse("admin:auth_user_deactivate", args=[alice.pk]))
    assert response.status_code == 302
    alice.refresh_from_db()
    assert not alice.is_active
    assert AuditEvent.objects.filter(actor=alice, reason="her first upload").exists()
    event = AuditEvent.objects.get(action="account.deactivated")
    assert event.actor == administrator and event.object_id == str(alice.pk)
    assert event.detail["before"] == {"is_active": True}
    assert event.detail["after"] == {"is_active": False}
    # She can no longer use the portal: her API token is refused.
    api = Client(HTTP_AUTHORIZATION=f"Token {raw_token}")
    assert api.get("/api/v1/devices/").status_code == 401


def test_deactivation_is_a_post_and_needs_the_permission_to_change_users(alice):
    operator = make_user(roles.OPERATOR, username="olivia")
    client = Client()
    client.force_login(operator)
    url = reverse("admin:auth_user_deactivate", args=[alice.pk])
    assert client.post(url).status_code == 403
    alice.refresh_from_db()
    assert alice.is_active


def test_an_administrator_cannot_deactivate_their_own_account(admin_client, administrator):
    admin_client.post(reverse("admin:auth_user_deactivate", args=[administrator.pk]))
    administrator.refresh_from_db()
    assert administrator.is_active


def test_deactivate_selected_users_action(admin_client, alice):
    response = admin_client.post(
        reverse("admin:auth_user_changelist"),
        {"action": "deactivate_selected", "_selected_action": [alice.pk]},
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert not alice.is_active


def test_a_user_without_audit_history_is_deleted_as_usual(admin_client):
    bob = make_user(username="bob")
    response = admin_client.post(delete_url(bob), {"post": "yes"})
    assert response.status_code == 302
    assert not User.objects.filter(pk=bob.pk).exists()
