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


# --- Issue 14: policies edited anywhere are audited; versions picked by name ----------------------


def _group_form(the_group, **policy):
    """The device-group change form's POST, with one policy row in its inline."""
    data = {
        "name": the_group.name, "description": "", "require_attestation": "",
        "rules-TOTAL_FORMS": "0", "rules-INITIAL_FORMS": "0",
        "policies-TOTAL_FORMS": "1", "policies-INITIAL_FORMS": "0",
    }
    data.update({f"policies-0-{k}": v for k, v in policy.items()})
    return data


def test_a_policy_added_inside_the_group_form_is_audited_with_the_acting_user(
    client, world, trusted_app
):
    group = DeviceGroupFactory(name="EU")
    client.force_login(world["operator"])
    url = reverse("admin:policies_devicegroup_change", args=[group.pk])
    response = client.post(url, _group_form(
        group, component=trusted_app.component.pk, effect="required", version=trusted_app.pk,
        note="pinned", created_by=world["viewer"].pk,  # a forged field: never taken
    ))
    assert response.status_code == 302, response.content.decode()[:3000]
    policy = Policy.objects.get()
    assert policy.created_by == world["operator"]  # set by the product, not by the form
    event = AuditEvent.objects.get(action="policy.add")
    assert event.actor == world["operator"] and event.object_id == str(policy.pk)
    assert "hello-ta required (1.0)" in event.detail["after"]["repr"]


def test_inline_policy_edits_and_deletes_are_audited_with_before(client, world, trusted_app):
    policy = PolicyFactory(group=DeviceGroupFactory(name="EU"), component=trusted_app.component)
    client.force_login(world["operator"])
    url = reverse("admin:policies_devicegroup_change", args=[policy.group.pk])
    data = _group_form(policy.group, id=policy.pk, group=policy.group.pk,
                       component=trusted_app.component.pk, effect="forbidden", version="", note="")
    data["policies-INITIAL_FORMS"] = "1"
    assert client.post(url, data).status_code == 302
    change = AuditEvent.objects.get(action="policy.change")
    assert "required" in change.detail["before"]["repr"] and "forbidden" in change.detail["after"]["repr"]
    data["policies-0-DELETE"] = "on"
    assert client.post(url, data).status_code == 302
    assert not Policy.objects.exists()
    deleted = AuditEvent.objects.get(action="policy.delete")
    assert deleted.actor == world["operator"] and "forbidden" in deleted.detail["before"]["repr"]


def test_created_by_is_never_an_editable_list_of_users(client, world, trusted_app):
    group = DeviceGroupFactory()
    PolicyFactory(group=group, component=trusted_app.component, created_by=world["operator"])
    client.force_login(world["operator"])
    for url in (reverse("admin:policies_devicegroup_change", args=[group.pk]),
                reverse("admin:policies_policy_add"),
                reverse("admin:policies_devicegroup_add")):
        page = client.get(url).content.decode()
        assert 'name="created_by"' not in page and 'name="policies-0-created_by"' not in page, url
        assert "alice" not in page  # no list of every user


def test_versions_are_picked_by_name_and_state_not_by_id(client, world, trusted_app):
    client.force_login(world["operator"])
    for url in (reverse("admin:policies_policy_add"), reverse("admin:policies_deviceoverride_add"),
                reverse("admin:policies_queuedaction_add")):
        page = client.get(url).content.decode()
        assert f'<option value="{trusted_app.pk}">hello-ta 1.0 (released)</option>' in page, url
        assert '<select name="version"' in page, url  # a choice, not a raw id to type


# --- Compromise responses: drill-down and CSV --------------------------------------------------------


@pytest.fixture
def compromised(trusted_app):
    from apps.policies import services

    holders = [DeviceFactory(name=f"holder-{n}", state="active") for n in range(3)]
    for device in holders:
        InstalledComponent.objects.create(device=device, component_key=trusted_app.component.component_id,
                                          component=trusted_app.component, version=trusted_app,
                                          sequence_number=1)
    response = services.mark_compromised(trusted_app, actor=None, reason="CVE-2026-0001")
    services.fan_out_compromise_batch(response.pk)  # on_commit does not run inside a test's transaction
    QueuedAction.objects.filter(device=holders[0]).update(state="succeeded", reason="")
    QueuedAction.objects.filter(device=holders[1]).update(state="failed", reason="=HYPERLINK(evil)")
    return response, holders


def test_compromise_page_draws_progress_with_a_link_per_state(client, world, compromised):
    response, _ = compromised
    client.force_login(world["viewer"])
    page = client.get(reverse("admin:policies_compromiseresponse_change", args=[response.pk])).content.decode()
    assert "1 of 3 devices removed (33 %)" in page
    actions = reverse("admin:policies_queuedaction_changelist")
    for bucket in ("removed", "failed", "not_contacted", "delivered"):
        assert f"{actions}?compromise__id__exact={response.pk}&amp;progress={bucket}" in page
    assert reverse("admin:policies_compromiseresponse_export", args=[response.pk]) in page
    assert '<meta http-equiv="refresh" content="30">' in page and "reloads every 30 s" in page
    failed = client.get(f"{actions}?compromise__id__exact={response.pk}&progress=failed").content.decode()
    assert ">holder-1<" in failed and ">holder-0<" not in failed and ">holder-2<" not in failed


def test_compromise_list_shows_a_bar_without_a_query_per_row(
    client, world, compromised, django_assert_max_num_queries
):
    client.force_login(world["viewer"])
    url = reverse("admin:policies_compromiseresponse_changelist")
    client.get(url)
    with django_assert_max_num_queries(12):
        page = client.get(url).content.decode()
    assert "1 of 3 devices removed" in page


def test_compromise_csv_lists_every_device_and_its_removal(client, world, compromised):
    import csv
    import io

    response, holders = compromised
    client.force_login(world["viewer"])
    answer = client.get(reverse("admin:policies_compromiseresponse_export", args=[response.pk]))
    assert answer.status_code == 200 and answer["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(answer.streaming_content).decode())))
    by_device = {row["device"]: row for row in rows}
    assert set(by_device) == {"holder-0", "holder-1", "holder-2"}
    assert by_device["holder-0"]["progress"] == "removed"
    assert by_device["holder-1"]["progress"] == "failed"
    assert by_device["holder-1"]["reason"] == "'=HYPERLINK(evil)"  # never a formula
    assert by_device["holder-2"]["progress"] == "not contacted yet"
    assert by_device["holder-2"]["device_kid"] == holders[2].kid
    assert AuditEvent.objects.filter(action="compromise.export", actor=world["viewer"]).exists()


def test_compromise_csv_of_an_unknown_response_is_a_404(client, world):
    client.force_login(world["viewer"])
    assert client.get(reverse("admin:policies_compromiseresponse_export", args=[424242])).status_code == 404


@pytest.mark.parametrize("value", ["nonsense", "", "removed'--"])
def test_a_bad_progress_filter_never_fails(client, world, compromised, value):
    client.force_login(world["viewer"])
    url = reverse("admin:policies_queuedaction_changelist") + f"?progress={value}"
    assert client.get(url).status_code in (200, 302)
