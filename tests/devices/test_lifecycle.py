"""Retiring a device and bringing it back: the service, the API and the admin, audited; a
retired device's TEEP messages are dropped with an audit reason."""

import pytest
from django.urls import reverse

from apps.accounts import roles
from apps.audit.models import AuditEvent
from apps.devices import services
from apps.devices.models import Device
from apps.policies import services as policies
from apps.policies.models import QueuedAction
from apps.teep.wire import messages
from apps.teep.wire.keys import TeepKey
from tests.accounts.helpers import client_for, make_user
from tests.api.conftest import token_client
from tests.components.factories import TrustedComponentFactory
from tests.tam.conftest import SimAgent

pytestmark = pytest.mark.django_db
TEEP = "application/teep+cbor"


@pytest.fixture
def agent(db):
    key = TeepKey.generate("p256")
    device = services.register_agent(public_key_bytes=key.public_pem(), name="lab-7")
    return SimAgent(key=key, device=device)


@pytest.fixture
def operator(db):
    return make_user(roles.OPERATOR, username="olivia")


def test_retiring_records_who_why_and_the_state_before(agent, operator):
    Device.objects.filter(pk=agent.device.pk).update(state="active")
    device = services.retire_device(agent.device, actor=operator, reason="returned to vendor")
    assert device.state == Device.State.RETIRED
    event = AuditEvent.objects.get(action="device.retire")
    assert (event.actor, event.reason, event.device_kid) == (
        operator,
        "returned to vendor",
        device.kid,
    )
    assert event.detail["before"] == {"state": "active"}
    assert event.detail["after"] == {"state": "retired"}


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_reason_is_required(agent, operator, reason):
    with pytest.raises(services.DeviceError, match="reason"):
        services.retire_device(agent.device, actor=operator, reason=reason)
    assert Device.objects.get(pk=agent.device.pk).state == Device.State.REGISTERED


def test_retiring_twice_or_unretiring_an_active_device_is_refused(agent, operator):
    with pytest.raises(services.DeviceError, match="not retired"):
        services.unretire_device(agent.device, actor=operator, reason="x")
    services.retire_device(agent.device, actor=operator, reason="lost")
    with pytest.raises(services.DeviceError, match="already retired"):
        services.retire_device(agent.device, actor=operator, reason="lost again")
    assert AuditEvent.objects.filter(action="device.retire").count() == 1


def test_open_actions_are_cancelled_and_come_back_with_the_device(agent, operator):
    component = TrustedComponentFactory()
    policies.queue_action(actor=operator, component=component, kind="install", device=agent.device)
    Device.objects.filter(pk=agent.device.pk).update(state="untrusted")
    services.retire_device(agent.device, actor=operator, reason="stolen")
    action = QueuedAction.objects.get()
    assert action.state == QueuedAction.State.CANCELLED
    assert action.reason == "device retired: stolen"

    device = services.unretire_device(agent.device, actor=operator, reason="found again")
    assert device.state == Device.State.UNTRUSTED  # as it was: retiring trusts nothing
    action.refresh_from_db()
    assert action.state == QueuedAction.State.QUEUED
    event = AuditEvent.objects.get(action="device.unretire")
    assert event.reason == "found again" and event.detail["reopened_actions"] == [action.pk]


def test_a_retired_devices_messages_are_dropped_over_http(agent, operator, client):
    services.retire_device(agent.device, actor=operator, reason="decommissioned")
    request = agent.read(client.post("/tam", data=b"", content_type=TEEP, HTTP_ACCEPT=TEEP).content)
    body = agent.sign(messages.QueryResponse(token=request.token, tc_list=()))
    response = client.post("/tam", data=body, content_type=TEEP, HTTP_ACCEPT=TEEP)
    assert response.status_code == 204 and response.content == b""
    event = AuditEvent.objects.filter(device_kid=agent.device.kid).exchanges().latest("id")
    assert (event.outcome, event.reason) == ("dropped", "device is retired")
    device = Device.objects.get(pk=agent.device.pk)
    assert device.last_contact_at is None  # nothing recorded from a dropped exchange

    services.unretire_device(device, actor=operator, reason="back in the lab")
    request = agent.read(client.post("/tam", data=b"", content_type=TEEP, HTTP_ACCEPT=TEEP).content)
    body = agent.sign(messages.QueryResponse(token=request.token, tc_list=()))
    assert client.post("/tam", data=body, content_type=TEEP, HTTP_ACCEPT=TEEP).status_code == 204
    assert Device.objects.get(pk=device.pk).last_contact_at is not None


# --- the API ------------------------------------------------------------------------------


def test_api_retire_and_unretire(agent):
    client, user = token_client(roles.OPERATOR)
    url = f"/api/v1/devices/{agent.device.pk}/"
    response = client.post(
        url + "retire/", {"reason": "end of life"}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "retired"
    assert AuditEvent.objects.get(action="device.retire").actor == user

    again = client.post(url + "retire/", {"reason": "x"}, content_type="application/json")
    assert again.status_code == 400 and "already retired" in again.json()["detail"]
    missing = client.post(url + "unretire/", {}, content_type="application/json")
    assert missing.status_code == 400 and "reason" in missing.json()

    back = client.post(url + "unretire/", {"reason": "reused"}, content_type="application/json")
    assert back.status_code == 200 and back.json()["state"] == "registered"


def test_api_retire_needs_the_change_device_permission(agent):
    client, _ = token_client(roles.VIEWER)
    response = client.post(
        f"/api/v1/devices/{agent.device.pk}/retire/",
        {"reason": "x"},
        content_type="application/json",
    )
    assert response.status_code == 403
    assert Device.objects.get(pk=agent.device.pk).state == Device.State.REGISTERED


# --- the admin ----------------------------------------------------------------------------


def test_admin_retire_page_asks_for_a_reason_then_retires(agent):
    client, user = client_for(roles.OPERATOR)
    url = reverse("admin:devices_device_retire", args=[agent.device.pk])
    page = client.get(url).content.decode()
    assert "Retire lab-7?" in page and "dropped" in page
    refused = client.post(url, {"reason": ""})
    assert refused.status_code == 200 and "required" in refused.content.decode()
    assert Device.objects.get(pk=agent.device.pk).state == Device.State.REGISTERED
    done = client.post(url, {"reason": "broken screen"})
    assert done.status_code == 302
    assert done["Location"] == reverse("admin:devices_device_change", args=[agent.device.pk])
    assert Device.objects.get(pk=agent.device.pk).state == Device.State.RETIRED
    assert AuditEvent.objects.get(action="device.retire").actor == user


def test_admin_device_page_offers_retire_or_unretire(agent):
    client, _ = client_for(roles.OPERATOR)
    change = reverse("admin:devices_device_change", args=[agent.device.pk])
    page = client.get(change).content.decode()
    assert reverse("admin:devices_device_retire", args=[agent.device.pk]) in page
    services.retire_device(agent.device, actor=None, reason="x")
    page = client.get(change).content.decode()
    assert reverse("admin:devices_device_unretire", args=[agent.device.pk]) in page
    assert reverse("admin:devices_device_retire", args=[agent.device.pk]) not in page
    assert 'badge-muted">Retired' in page


def test_viewers_get_no_retire_button_and_no_retire_page(agent):
    client, _ = client_for(roles.VIEWER)
    page = client.get(reverse("admin:devices_device_change", args=[agent.device.pk]))
    assert (
        reverse("admin:devices_device_retire", args=[agent.device.pk]) not in page.content.decode()
    )
    url = reverse("admin:devices_device_retire", args=[agent.device.pk])
    assert client.get(url).status_code == 403
    assert client.post(url, {"reason": "x"}).status_code == 403
    assert Device.objects.get(pk=agent.device.pk).state == Device.State.REGISTERED


def test_admin_bulk_retire_action_confirms_with_a_reason(agent):
    other = services.register_agent(
        public_key_bytes=TeepKey.generate("p256").public_pem(), name="lab-8"
    )
    client, _ = client_for(roles.OPERATOR)
    changelist = reverse("admin:devices_device_changelist")
    ids = [str(agent.device.pk), str(other.pk)]
    confirm = client.post(changelist, {"action": "retire_selected", "_selected_action": ids})
    assert confirm.status_code == 200
    assert "lab-7" in confirm.content.decode() and "lab-8" in confirm.content.decode()
    assert not Device.objects.filter(state="retired").exists()
    client.post(
        changelist,
        {
            "action": "retire_selected",
            "_selected_action": ids,
            "confirm": "yes",
            "reason": "batch 3",
        },
    )
    assert Device.objects.filter(state="retired").count() == 2
    assert AuditEvent.objects.filter(action="device.retire", reason="batch 3").count() == 2


def test_unknown_device_retire_page_is_a_404_not_a_500(db):
    client, _ = client_for(roles.OPERATOR)
    assert client.get(reverse("admin:devices_device_retire", args=[999999])).status_code == 404
