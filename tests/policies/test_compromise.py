"""Compromise response: only a security officer marks a version compromised, with a reason,
after a confirmation page; the fan-out queues one removal per holder (idempotent, safe twice
at once); devices get it at their next contact; progress comes from the actions' states."""

import threading

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.components.models import ComponentVersion
from apps.devices.models import InstalledComponent
from apps.policies import services
from apps.policies.models import CompromiseResponse, QueuedAction
from apps.policies.tasks import fan_out_compromise, sweep_queued_actions

from .conftest import contact, fail, succeed
from .factories import DeviceFactory, DeviceGroupFactory, PolicyFactory
from tests.tam.conftest import TA_COMPONENT_ID, release_new_version

State = QueuedAction.State


def holders(version, count):
    devices = [DeviceFactory() for _ in range(count)]
    InstalledComponent.objects.bulk_create(
        InstalledComponent(device=d, component_key=version.component.component_id, component=version.component,
                           version=version, sequence_number=version.sequence_number) for d in devices
    )
    return devices


def mark(version, actor=None, reason="CVE-2026-0001: key extraction"):
    """mark_compromised without running the fan-out (tests run it explicitly)."""
    return services.mark_compromised(version, actor=actor, reason=reason)


def one_removal_per_device(response, devices):
    rows = list(QueuedAction.objects.filter(compromise=response).values_list("device_id", "kind"))
    assert sorted(rows) == sorted((d.pk, "remove") for d in devices)


# --- End to end --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_compromise_end_to_end_through_the_tam(make_agent, trusted_app, world, django_capture_on_commit_callbacks):
    PolicyFactory(group=DeviceGroupFactory(all_devices=True), component=trusted_app.component)
    agents = [make_agent(name=f"a{n}") for n in range(3)]
    for agent in agents[:2]:
        succeed(agent, contact(agent))
    fixed = release_new_version(trusted_app.component, 2)
    ComponentVersion.objects.filter(pk=fixed.pk).update(state="draft", released_at=None)  # not yet

    officer = world["security officer"]
    with django_capture_on_commit_callbacks(execute=True):
        response = services.mark_compromised(trusted_app, actor=officer, reason="CVE-2026-0001")
    trusted_app.refresh_from_db()
    assert trusted_app.state == "compromised" and response.holders_at_mark == 2
    assert response.fanout_finished_at is None  # the fan-out ran after commit...
    response.refresh_from_db()
    assert response.fanout_finished_at is not None  # ...eagerly, in this test
    progress = services.compromise_progress(response)
    assert (progress["total"], progress["not_contacted"], progress["removed"]) == (2, 2, 0)
    event = AuditEvent.objects.get(action="component_version.compromise")
    assert (event.actor, event.actor_name, event.reason) == (officer, "charlie", "CVE-2026-0001")
    assert event.detail["holders"] == 2

    manifest_id = (tuple(trusted_app.component.manifest_component_id_elements),)
    first = contact(agents[0], held=[trusted_app])
    assert first.unneeded_manifest_list == manifest_id and first.manifest_list is None
    succeed(agents[0], first)
    second = contact(agents[1], held=[trusted_app])
    fail(agents[1], second)
    progress = services.compromise_progress(response)
    assert (progress["removed"], progress["pending"], progress["not_contacted"]) == (1, 1, 0)
    # The device that never held it got nothing about it (nor the compromised version).
    assert contact(agents[2]) is None

    # The fixed version is released: the policy installs it on the device that removed it...
    ComponentVersion.objects.filter(pk=fixed.pk).update(state="released", released_at=trusted_app.released_at)
    assert contact(agents[0]).manifest_list == (bytes(fixed.envelope),)
    # ...and the holder whose removal failed gets both in one Update: unlink first, then install
    # the fix (TEEP 7.2.2), as DESIGN.md promises ("at its next contact").
    retry = contact(agents[1], held=[trusted_app])
    assert retry.unneeded_manifest_list == manifest_id and retry.manifest_list == (bytes(fixed.envelope),)
    succeed(agents[1], retry)
    assert services.compromise_progress(response)["removed"] == 2
    assert not InstalledComponent.objects.filter(version=trusted_app).exists()
    assert InstalledComponent.objects.get(device=agents[1].device).version == fixed


@pytest.mark.django_db
def test_a_compromised_version_is_not_offered_and_its_payload_not_served(make_agent, trusted_app, client):
    url = reverse("components:payload", args=[trusted_app.binary_sha256, trusted_app.binary_filename])
    assert client.get(url).status_code == 200
    mark(trusted_app)
    assert client.get(url).status_code == 404
    agent = make_agent()
    assert contact(agent, requested=[TA_COMPONENT_ID]) is None


@pytest.mark.django_db
def test_a_holder_contacting_before_the_fan_out_reaches_it_is_tracked_once(make_agent, trusted_app):
    agent = make_agent()
    PolicyFactory(group=DeviceGroupFactory(all_devices=True), component=trusted_app.component)
    succeed(agent, contact(agent))
    others = holders(trusted_app, 3)
    response = mark(trusted_app)
    update = contact(agent, held=[trusted_app])
    assert update.unneeded_manifest_list is not None
    fan_out_compromise.delay(response.pk, batch_size=2)
    one_removal_per_device(response, [agent.device, *others])
    succeed(agent, update)
    assert QueuedAction.objects.get(device=agent.device).state == State.SUCCEEDED


# --- Who may mark it, and the confirmation page ---------------------------------------------------


@pytest.mark.django_db
def test_only_the_security_officer_role_may_mark_compromised(world):
    # Administrators hold every permission (apps/accounts/roles.py); no other role has this one.
    holders = set(Group.objects.filter(permissions__codename="mark_compromised").values_list("name", flat=True))
    assert holders == {"security officer", "administrator"}
    assert world["security officer"].has_perm("components.mark_compromised")
    assert not world["operator"].has_perm("components.mark_compromised")
    assert world["operator"].has_perm("policies.add_queuedaction")
    assert not world["viewer"].has_perm("policies.add_queuedaction")
    assert world["viewer"].has_perm("policies.view_compromiseresponse")


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_others_cannot_reach_the_compromise_page(client, world, trusted_app, role):
    client.force_login(world[role])
    url = reverse("admin:policies_compromiseresponse_add")
    assert client.get(url).status_code == 403
    assert client.post(url, {"version": trusted_app.pk, "reason": "x", "confirm": "True"}).status_code == 403
    trusted_app.refresh_from_db()
    assert trusted_app.state == "released"


@pytest.mark.django_db
def test_anonymous_is_sent_to_the_login_page(client):
    response = client.get(reverse("admin:policies_compromiseresponse_add"))
    assert response.status_code == 302 and "/login/" in response["Location"]


@pytest.mark.django_db
def test_security_officer_sees_what_will_happen_then_confirms(client, world, trusted_app,
                                                              django_capture_on_commit_callbacks):
    newer = release_new_version(trusted_app.component, 2)
    PolicyFactory(group=DeviceGroupFactory(name="fleet", all_devices=True), component=trusted_app.component)
    holders(trusted_app, 4)
    client.force_login(world["security officer"])
    url = reverse("admin:policies_compromiseresponse_add")
    page = client.post(url, {"version": trusted_app.pk, "reason": "  "})
    assert page.status_code == 200 and "A reason is required" in page.content.decode()
    page = client.post(url, {"version": trusted_app.pk, "reason": "advisory 42"}).content.decode()
    assert "<strong>4</strong> devices" in page
    assert 'name="replacement" value="" checked' in page  # remove only, unless chosen otherwise
    assert f'name="replacement" value="{newer.pk}"' in page and "a newer release" in page
    trusted_app.refresh_from_db()
    assert trusted_app.state == "released"  # nothing happens before confirmation
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(url, {"version": trusted_app.pk, "reason": "advisory 42", "confirm": "True",
                                 "replacement": newer.pk})
    response = CompromiseResponse.objects.get()
    assert done.status_code == 302 and done["Location"].endswith(f"/{response.pk}/change/")
    assert response.replacement == newer
    assert services.compromise_progress(response)["total"] == 4
    page = client.get(done["Location"]).content.decode()
    assert "not yet contacted</th><td>4" in page
    event = AuditEvent.objects.get(action="component_version.compromise")
    assert event.actor_name == "charlie" and event.reason == "advisory 42" and event.source_ip == "127.0.0.1"


@pytest.mark.django_db
def test_a_reason_is_required_and_a_version_is_marked_once(trusted_app):
    with pytest.raises(services.PolicyError, match="reason is required"):
        services.mark_compromised(trusted_app, actor=None, reason=" ")
    mark(trusted_app)
    with pytest.raises(services.PolicyError, match="already"):
        mark(trusted_app)


# --- The fan-out: batches, idempotence, crashes, two at once --------------------------------------------


@pytest.mark.django_db
def test_fan_out_in_batches_is_idempotent(trusted_app, django_assert_max_num_queries):
    devices = holders(trusted_app, 11)
    response = mark(trusted_app)
    with django_assert_max_num_queries(12):
        assert services.fan_out_compromise_batch(response.pk, batch_size=5) is False
    fan_out_compromise.delay(response.pk, batch_size=5)
    one_removal_per_device(response, devices)
    # Run again from scratch (a redelivered message, an operator re-running it).
    CompromiseResponse.objects.filter(pk=response.pk).update(fanout_cursor=0, fanout_finished_at=None)
    fan_out_compromise.delay(response.pk, batch_size=3)
    one_removal_per_device(response, devices)


@pytest.mark.django_db
def test_fan_out_killed_mid_way_resumes_by_the_sweeper(trusted_app, monkeypatch):
    devices = holders(trusted_app, 9)
    response = mark(trusted_app)
    real_batch = services.fan_out_compromise_batch
    calls = []

    def dies_on_second_batch(response_id, batch_size):
        calls.append(1)
        if len(calls) == 2:
            raise SystemExit("worker killed")
        return real_batch(response_id, batch_size=batch_size)

    monkeypatch.setattr(services, "fan_out_compromise_batch", dies_on_second_batch)
    with pytest.raises(SystemExit):
        fan_out_compromise.delay(response.pk, batch_size=4)
    assert QueuedAction.objects.count() == 4
    monkeypatch.setattr(services, "FANOUT_STALL_AFTER", services.FANOUT_STALL_AFTER * 0)
    assert sweep_queued_actions.delay().get()["fanouts_resumed"] == [response.pk]
    one_removal_per_device(response, devices)


@pytest.mark.django_db
def test_an_operator_removal_already_queued_serves_the_compromise(trusted_app):
    devices = holders(trusted_app, 2)
    services.queue_action(actor=None, component=trusted_app.component, kind="remove", device=devices[0])
    response = mark(trusted_app)
    fan_out_compromise.delay(response.pk)
    one_removal_per_device(response, devices)
    assert QueuedAction.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_two_fan_outs_at_once_queue_one_removal_per_device(trusted_app):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers; the race needs PostgreSQL")
    devices = holders(trusted_app, 300)
    response = mark(trusted_app)
    barrier = threading.Barrier(2)
    errors = []

    def run():
        try:
            barrier.wait()
            while not services.fan_out_compromise_batch(response.pk, batch_size=40):
                pass
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    one_removal_per_device(response, devices)
