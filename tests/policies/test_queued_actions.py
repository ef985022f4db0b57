"""Queued install, update and removal through the real TAM state machine:
queued -> delivered -> succeeded / failed, retried within limits, cancellable before delivery."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.devices.models import DeliveryItem, InstalledComponent
from apps.policies import services
from apps.policies.models import QueuedAction
from apps.policies.tasks import sweep_queued_actions
from apps.teep.models import TeepToken

from .conftest import contact, fail, succeed
from .factories import DeviceGroupFactory, PolicyFactory, TagFactory
from tests.tam.conftest import release_new_version

pytestmark = pytest.mark.django_db
State = QueuedAction.State


def queue(kind, component, *, device=None, group=None, version=None):
    return services.queue_action(actor=None, component=component, kind=kind, version=version,
                                 device=device, group=group, reason="test")


def the_action(device):
    return QueuedAction.objects.get(device=device)


def test_queued_install_is_delivered_at_the_next_contact_and_never_again_after_success(make_agent, trusted_app):
    agent = make_agent()
    assert queue("install", trusted_app.component, device=agent.device) == 1
    action = the_action(agent.device)
    assert action.state == State.QUEUED and action.delivery is None
    update = contact(agent)
    assert update.manifest_list == (bytes(trusted_app.envelope),)
    action.refresh_from_db()
    assert action.state == State.DELIVERED
    assert action.delivery == DeliveryItem.objects.get(update_token=update.token)
    succeed(agent, update)
    action.refresh_from_db()
    assert action.state == State.SUCCEEDED and action.settled_at is not None
    assert contact(agent, held=[trusted_app]) is None
    assert DeliveryItem.objects.filter(device=agent.device).count() == 1
    assert AuditEvent.objects.filter(action="queued_action.install", device_kid=agent.device.kid).exists()


def test_queued_update_names_a_version(make_agent, trusted_app):
    agent = make_agent()
    PolicyFactory(group=DeviceGroupFactory(all_devices=True), component=trusted_app.component,
                  version=trusted_app)
    succeed(agent, contact(agent))
    v2 = release_new_version(trusted_app.component, 2)
    assert contact(agent, held=[trusted_app]) is None  # pinned: no automatic update
    PolicyFactory._meta.model.objects.all().delete()
    queue("update", trusted_app.component, device=agent.device, version=v2)
    update = contact(agent, held=[trusted_app])
    assert update.manifest_list == (bytes(v2.envelope),)
    succeed(agent, update)
    assert the_action(agent.device).state == State.SUCCEEDED
    assert InstalledComponent.objects.get(device=agent.device).version == v2


def test_failed_delivery_is_retried_then_failed_for_good_with_the_suit_report_reason(
    make_agent, trusted_app, settings
):
    settings.TEEP_MAX_DELIVERY_FAILURES = 2
    agent = make_agent()
    queue("install", trusted_app.component, device=agent.device)
    fail(agent, contact(agent), suit_reason="condition-failed")
    action = the_action(agent.device)
    assert action.state == State.QUEUED and action.attempts == 1 and "condition-failed" in action.reason
    fail(agent, contact(agent), suit_reason="condition-failed")
    action.refresh_from_db()
    assert action.state == State.FAILED and action.attempts == 2 and "condition-failed" in action.reason
    assert contact(agent) is None
    assert DeliveryItem.objects.filter(device=agent.device).count() == 2


def test_temporary_errors_do_not_count_toward_the_limit(make_agent, trusted_app, settings):
    settings.TEEP_MAX_DELIVERY_FAILURES = 1
    settings.TEEP_TEMPORARY_ERROR_BACKOFF_SECONDS = 0
    agent = make_agent()
    queue("install", trusted_app.component, device=agent.device)
    fail(agent, contact(agent), name="ERR_TEMPORARY_ERROR")
    action = the_action(agent.device)
    assert action.state == State.QUEUED and action.attempts == 0
    succeed(agent, contact(agent))
    action.refresh_from_db()
    assert action.state == State.SUCCEEDED


def test_an_action_can_be_cancelled_before_delivery_only(make_agent, trusted_app, other_app):
    agent = make_agent()
    queue("install", trusted_app.component, device=agent.device)
    queue("install", other_app.component, device=agent.device)
    first, second = QueuedAction.objects.order_by("id")
    assert services.cancel_actions([first.pk], actor=None) == 1
    update = contact(agent)
    assert update.manifest_list == (bytes(other_app.envelope),)
    assert services.cancel_actions([second.pk], actor=None) == 0
    first.refresh_from_db(), second.refresh_from_db()
    assert (first.state, second.state) == (State.CANCELLED, State.DELIVERED)


def test_one_open_action_per_device_component_and_kind(make_agent, trusted_app):
    agent = make_agent()
    assert queue("install", trusted_app.component, device=agent.device) == 1
    assert queue("install", trusted_app.component, device=agent.device) == 0
    assert QueuedAction.objects.count() == 1


def test_queued_removal_for_a_group_reaches_each_device_at_its_contact(make_agent, trusted_app):
    agents = [make_agent(name=f"a{n}") for n in range(3)]
    lab = TagFactory(name="lab")
    for agent in agents:
        queue("install", trusted_app.component, device=agent.device)
        succeed(agent, contact(agent))
    for agent in agents[:2]:
        agent.device.tags.add(lab)
    assert queue("remove", trusted_app.component, group=DeviceGroupFactory(tags=["lab"])) == 2
    for agent in agents[:2]:
        update = contact(agent, held=[trusted_app])
        assert update.unneeded_manifest_list == (tuple(trusted_app.component.manifest_component_id_elements),)
        succeed(agent, update)
    assert contact(agents[2], held=[trusted_app]) is None
    assert list(QueuedAction.objects.filter(kind="remove").values_list("state", flat=True)) == ["succeeded"] * 2
    assert InstalledComponent.objects.filter(version=trusted_app).count() == 1


def test_removal_of_something_not_held_settles_at_contact_without_a_delivery(make_agent, trusted_app):
    agent = make_agent()
    queue("remove", trusted_app.component, device=agent.device)
    assert contact(agent) is None
    action = the_action(agent.device)
    assert action.state == State.SUCCEEDED and action.delivery is None and "not held" in action.reason


def test_queued_removal_of_a_required_component_fails_with_the_reason(make_agent, trusted_app):
    agent = make_agent()
    PolicyFactory(group=DeviceGroupFactory(all_devices=True), component=trusted_app.component)
    succeed(agent, contact(agent))
    queue("remove", trusted_app.component, device=agent.device)
    assert contact(agent, held=[trusted_app]) is None
    action = the_action(agent.device)
    assert action.state == State.FAILED and "required by" in action.reason


def test_unanswered_delivery_stays_delivered_not_confirmed_until_the_next_report(make_agent, trusted_app):
    agent = make_agent()
    queue("install", trusted_app.component, device=agent.device)
    first = contact(agent)
    DeliveryItem.objects.filter(update_token=first.token).update(expires_at=timezone.now() - timedelta(seconds=1))
    sweep_queued_actions.delay().get()
    action = the_action(agent.device)
    assert action.state == State.DELIVERED  # delivered, not confirmed: nothing says otherwise
    second = contact(agent)  # its report does not show it: the first was lost, offered again
    assert DeliveryItem.objects.get(update_token=first.token).state == DeliveryItem.State.LOST
    assert second.manifest_list == (bytes(trusted_app.envelope),)
    succeed(agent, second)
    action.refresh_from_db()
    assert action.state == State.SUCCEEDED and bytes(action.delivery.update_token) == second.token


def test_a_delivered_action_whose_token_expired_is_delivered_again_even_before_the_sweep(make_agent, trusted_app):
    agent = make_agent()
    queue("install", trusted_app.component, device=agent.device)
    first = contact(agent)
    DeliveryItem.objects.filter(update_token=first.token).update(expires_at=timezone.now() - timedelta(seconds=1))
    succeed(agent, contact(agent))
    assert the_action(agent.device).state == State.SUCCEEDED


def test_install_of_a_forbidden_component_fails_with_the_rule(make_agent, trusted_app):
    agent = make_agent()
    PolicyFactory(group=DeviceGroupFactory(all_devices=True), component=trusted_app.component, effect="forbidden")
    queue("install", trusted_app.component, device=agent.device)
    assert contact(agent) is None
    action = the_action(agent.device)
    assert action.state == State.FAILED and "forbidden by" in action.reason
