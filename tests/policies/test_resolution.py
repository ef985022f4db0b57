"""Which devices a group holds, and what a device's policies make due (resolution.py)."""

import pytest
from django.utils import timezone

from apps.components.models import ComponentVersion
from apps.devices.models import DeliveryItem, InstalledComponent
from apps.policies.models import AttributeRule, QueuedAction
from apps.policies.resolution import explain_due, groups_of, members, resolve

from .conftest import contact, succeed
from .factories import (
    AttributeRuleFactory,
    DeviceFactory,
    DeviceGroupFactory,
    DeviceOverrideFactory,
    PolicyFactory,
    TagFactory,
)
from tests.tam.conftest import release_new_version

pytestmark = pytest.mark.django_db


def decision_for(device, component):
    device.refresh_from_db()
    [decision] = [d for d in explain_due(device) if d.component and d.component.pk == component.pk]
    return decision


def hold(device, version):
    InstalledComponent.objects.create(
        device=device, component_key=version.component.component_id, component=version.component,
        version=version, sequence_number=version.sequence_number, image_digest=version.binary_sha256,
    )


# --- Groups ------------------------------------------------------------------------------------


def test_group_membership_by_tags_and_attribute_rules_agrees_in_python_and_sql():
    lab, field = TagFactory(name="lab"), TagFactory(name="field")
    devices = {
        "lab-a": DeviceFactory(attributes={"hwmodel": "model-a", "oemid": "0a0b"}),
        "lab-b": DeviceFactory(attributes={"hwmodel": "model-b"}),
        "field-a": DeviceFactory(attributes={"hwmodel": "model-a", "hwversion": "2.1"}),
        "bare": DeviceFactory(attributes={}),
    }
    devices["lab-a"].tags.add(lab)
    devices["lab-b"].tags.add(lab)
    devices["field-a"].tags.add(field)
    groups = {
        "lab": DeviceGroupFactory(tags=["lab"]),
        "model-a": AttributeRuleFactory(value="model-a").group,
        "lab-and-model-a": AttributeRuleFactory(group=DeviceGroupFactory(tags=["lab"]), value="model-a").group,
        "lab-or-field": DeviceGroupFactory(tags=["lab", "field"]),
        "a-or-b": AttributeRuleFactory(operator=AttributeRule.Operator.ONE_OF, value="model-a, model-b").group,
        "hw-2": AttributeRuleFactory(attribute="hwversion", operator=AttributeRule.Operator.STARTS_WITH,
                                     value="2.").group,
        "all": DeviceGroupFactory(all_devices=True),
        "empty": DeviceGroupFactory(),
    }
    expected = {
        "lab": {"lab-a", "lab-b"},
        "model-a": {"lab-a", "field-a"},
        "lab-and-model-a": {"lab-a"},
        "lab-or-field": {"lab-a", "lab-b", "field-a"},
        "a-or-b": {"lab-a", "lab-b", "field-a"},
        "hw-2": {"field-a"},
        "all": set(devices),
        "empty": set(),
    }
    names = {d.pk: n for n, d in devices.items()}
    for group_name, group in groups.items():
        assert {names[pk] for pk in members(group).values_list("pk", flat=True)} == expected[group_name], group_name
        in_python = {n for n, d in devices.items() if group in groups_of(d)}
        assert in_python == expected[group_name], group_name


def test_a_device_may_be_in_several_groups():
    device = DeviceFactory(attributes={"hwmodel": "model-a"})
    device.tags.add(TagFactory(name="lab"))
    by_tag = DeviceGroupFactory(tags=["lab"])
    by_model = AttributeRuleFactory(value="model-a").group
    assert set(groups_of(device)) == {by_tag, by_model}


# --- Required: latest released or pinned -------------------------------------------------------------


def test_required_latest_released_follows_new_releases_without_per_device_rows(trusted_app):
    group = DeviceGroupFactory(all_devices=True)
    devices = [DeviceFactory() for _ in range(20)]
    PolicyFactory(group=group, component=trusted_app.component)
    assert not QueuedAction.objects.exists() and not DeliveryItem.objects.exists()
    decision = decision_for(devices[0], trusted_app.component)
    assert (decision.action, decision.version.pk) == ("install", trusted_app.pk)
    assert "required by" in decision.reason and "latest released" in decision.reason
    newer = release_new_version(trusted_app.component, 2)
    hold(devices[1], trusted_app)
    decision = decision_for(devices[1], trusted_app.component)
    assert (decision.action, decision.version.pk) == ("update", newer.pk)
    assert not QueuedAction.objects.exists() and not DeliveryItem.objects.exists()


def test_pinned_version_beats_latest_and_the_highest_pin_wins(trusted_app):
    v2 = release_new_version(trusted_app.component, 2)
    release_new_version(trusted_app.component, 3)
    device = DeviceFactory(attributes={"hwmodel": "model-a"})
    device.tags.add(TagFactory(name="lab"))
    PolicyFactory(group=DeviceGroupFactory(tags=["lab"]), component=trusted_app.component)
    PolicyFactory(group=AttributeRuleFactory(value="model-a").group, component=trusted_app.component,
                  version=trusted_app)
    assert decision_for(device, trusted_app.component).version.pk == trusted_app.pk
    PolicyFactory(group=DeviceGroupFactory(all_devices=True), component=trusted_app.component, version=v2)
    assert decision_for(device, trusted_app.component).version.pk == v2.pk


def test_a_pinned_version_older_than_the_held_one_is_not_rolled_back(trusted_app):
    v2 = release_new_version(trusted_app.component, 2)
    device = DeviceFactory()
    hold(device, v2)
    PolicyFactory(group=DeviceGroupFactory(all_devices=True), component=trusted_app.component, version=trusted_app)
    decision = decision_for(device, trusted_app.component)
    assert decision.action == "none" and "not rolled back" in decision.reason


def test_pinning_stops_automatic_updates_of_held_components(trusted_app):
    release_new_version(trusted_app.component, 2)
    device = DeviceFactory()
    hold(device, trusted_app)
    assert decision_for(device, trusted_app.component).action == "update"
    PolicyFactory(group=DeviceGroupFactory(all_devices=True), component=trusted_app.component, version=trusted_app)
    decision = decision_for(device, trusted_app.component)
    assert decision.action == "none" and decision.reason.startswith("up to date")


# --- Forbidden wins ----------------------------------------------------------------------------------


def test_forbidden_wins_over_required_from_another_group(trusted_app):
    device = DeviceFactory(attributes={"hwmodel": "model-a"})
    PolicyFactory(group=DeviceGroupFactory(all_devices=True), component=trusted_app.component)
    PolicyFactory(group=AttributeRuleFactory(value="model-a").group, component=trusted_app.component,
                  effect="forbidden")
    decision = decision_for(device, trusted_app.component)
    assert decision.action == "none" and "forbidden" in decision.reason
    hold(device, trusted_app)
    decision = decision_for(device, trusted_app.component)
    assert decision.action == "remove" and "wins over 1 required policy" in decision.reason


def test_forbidding_one_version_leaves_the_newest_allowed_one(trusted_app):
    v2 = release_new_version(trusted_app.component, 2)
    device = DeviceFactory()
    group = DeviceGroupFactory(all_devices=True)
    PolicyFactory(group=group, component=trusted_app.component)
    PolicyFactory(group=DeviceGroupFactory(all_devices=True), component=trusted_app.component,
                  effect="forbidden", version=v2)
    assert decision_for(device, trusted_app.component).version.pk == trusted_app.pk
    hold(device, v2)
    decision = decision_for(device, trusted_app.component)
    assert decision.action == "remove" and "version 1.2 forbidden" in decision.reason


def test_forbidden_blocks_what_the_agent_requests(make_agent, trusted_app):
    from tests.tam.conftest import TA_COMPONENT_ID

    agent = make_agent()
    PolicyFactory(group=DeviceGroupFactory(all_devices=True), component=trusted_app.component, effect="forbidden")
    assert contact(agent, requested=[TA_COMPONENT_ID]) is None


# --- Overrides ------------------------------------------------------------------------------------------


def test_device_override_replaces_group_policies(trusted_app):
    device = DeviceFactory()
    group = DeviceGroupFactory(all_devices=True)
    PolicyFactory(group=group, component=trusted_app.component, effect="forbidden")
    override = DeviceOverrideFactory(device=device, component=trusted_app.component, effect="required")
    decision = decision_for(device, trusted_app.component)
    assert decision.action == "install" and "device override" in decision.reason
    override.effect = "exempt"
    override.save()
    hold(device, trusted_app)
    assert decision_for(device, trusted_app.component).action == "none"
    override.effect = "forbidden"
    override.save()
    assert decision_for(device, trusted_app.component).action == "remove"


def test_no_override_brings_back_a_compromised_version(trusted_app):
    device = DeviceFactory()
    hold(device, trusted_app)
    DeviceOverrideFactory(device=device, component=trusted_app.component, effect="required", version=trusted_app)
    ComponentVersion.objects.filter(pk=trusted_app.pk).update(state="compromised")
    decision = decision_for(device, trusted_app.component)
    assert decision.action == "remove" and "compromised" in decision.reason


# --- Unneeded vs required ----------------------------------------------------------------------------------


def test_a_required_component_is_kept_when_the_agent_says_unneeded(make_agent, trusted_app):
    agent = make_agent()
    PolicyFactory(group=DeviceGroupFactory(all_devices=True), component=trusted_app.component)
    succeed(agent, contact(agent))
    manifest_id = trusted_app.component.manifest_component_id_elements
    assert contact(agent, held=[trusted_app], unneeded=[manifest_id]) is None
    decision = decision_for(agent.device, trusted_app.component)
    assert decision.action == "none" and "agent reported it unneeded" in decision.reason
    assert InstalledComponent.objects.filter(device=agent.device).exists()


def test_an_unrequired_component_is_removed_when_the_agent_says_unneeded(make_agent, trusted_app):
    agent = make_agent()
    DeviceOverrideFactory(device=agent.device, component=trusted_app.component, effect="required")
    succeed(agent, contact(agent))
    agent.device.policy_overrides.all().delete()
    update = contact(agent, held=[trusted_app], unneeded=[trusted_app.component.manifest_component_id_elements])
    assert update.unneeded_manifest_list == (tuple(trusted_app.component.manifest_component_id_elements),)


# --- Cost ------------------------------------------------------------------------------------------------


def test_resolution_costs_a_bounded_number_of_queries(trusted_app, other_app, django_assert_max_num_queries):
    device = DeviceFactory(attributes={"hwmodel": "model-a"})
    hold(device, trusted_app)
    now = timezone.now()
    with django_assert_max_num_queries(12):
        resolve(device, now=now)
    for n in range(15):
        group = AttributeRuleFactory(value="model-a", group=DeviceGroupFactory(tags=[f"t{n}"])).group
        device.tags.add(group.tags.first())
        PolicyFactory(group=group, component=trusted_app.component if n % 2 else other_app.component,
                      effect="required" if n % 3 else "forbidden")
    with django_assert_max_num_queries(12):
        resolve(device, now=now)
