"""The admin: why each component is due on a device's page; queuing and cancelling actions."""

import pytest
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.devices.models import InstalledComponent
from apps.policies.models import Policy, QueuedAction

from .factories import DeviceFactory, DeviceGroupFactory, PolicyFactory

pytestmark = pytest.mark.django_db


def test_device_page_explains_why_each_component_is_due(client, world, trusted_app, other_app):
    device = DeviceFactory(attributes={"hwmodel": "model-a"})
    InstalledComponent.objects.create(device=device, component_key=other_app.component.component_id,
                                      component=other_app.component, version=other_app, sequence_number=1)
    PolicyFactory(group=DeviceGroupFactory(name="fleet", all_devices=True), component=trusted_app.component)
    PolicyFactory(group=DeviceGroupFactory(name="no-other", all_devices=True), component=other_app.component,
                  effect="forbidden")
    client.force_login(world["viewer"])
    page = client.get(reverse("admin:devices_device_change", args=[device.pk])).content.decode()
    assert "Groups: fleet, no-other." in page
    assert "<td>hello-ta</td><td>—</td><td>install</td><td>1.0</td>" in page
    assert 'required by group &quot;fleet&quot; policy: required (latest released)' in page
    assert "<td>other-ta</td><td>1.0</td><td>remove</td>" in page
    assert "forbidden by group &quot;no-other&quot; policy: forbidden" in page


def test_operator_queues_for_a_group_and_cancels(client, world, trusted_app):
    devices = [DeviceFactory() for _ in range(3)]
    group = DeviceGroupFactory(all_devices=True)
    client.force_login(world["operator"])
    response = client.post(reverse("admin:policies_queuedaction_add"), {
        "kind": "install", "component": trusted_app.component.pk, "group": group.pk, "reason": "rollout",
    })
    assert response.status_code == 302
    assert QueuedAction.objects.filter(state="queued").count() == len(devices)
    event = AuditEvent.objects.get(action="queued_action.install")
    assert event.actor_name == "bob" and event.detail["queued"] == 3
    ids = list(QueuedAction.objects.values_list("pk", flat=True)[:2])
    client.post(reverse("admin:policies_queuedaction_changelist"),
                {"action": "cancel_selected", "_selected_action": ids})
    assert QueuedAction.objects.filter(state="cancelled").count() == 2


def test_viewer_cannot_queue(client, world, trusted_app):
    client.force_login(world["viewer"])
    assert client.get(reverse("admin:policies_queuedaction_add")).status_code == 403
    assert client.get(reverse("admin:policies_queuedaction_changelist")).status_code == 200


def test_policy_changes_are_audited(client, world, trusted_app):
    group = DeviceGroupFactory()
    client.force_login(world["operator"])
    response = client.post(reverse("admin:policies_policy_add"), {
        "group": group.pk, "component": trusted_app.component.pk, "effect": "forbidden", "note": "",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    policy = Policy.objects.get()
    assert AuditEvent.objects.filter(action="policy.add", object_id=str(policy.pk), actor_name="bob").exists()


def test_changelists_render(client, world, trusted_app):
    client.force_login(world["security officer"])
    for name in ("devicegroup", "policy", "deviceoverride", "queuedaction", "compromiseresponse"):
        assert client.get(reverse(f"admin:policies_{name}_changelist")).status_code == 200, name
