"""Rollout progress (apps/dashboard/rollout.py): each device of a rollout in one state, counted
by one aggregate query, and the device list filtered to each state showing the same devices."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.accounts import roles
from apps.components.models import ComponentVersion
from apps.dashboard import rollout
from apps.devices.models import DeliveryItem
from apps.policies.models import Policy
from tests.accounts.helpers import client_for
from tests.components.factories import TrustedComponentFactory
from tests.dashboard.conftest import install, version_of
from tests.policies.factories import DeviceFactory, DeviceGroupFactory, PolicyFactory

pytestmark = pytest.mark.django_db


def deliver(device, version, state):
    return DeliveryItem.objects.create(
        device=device,
        kind="install",
        state=state,
        component_key=version.component.component_id,
        version=version,
        reason="ERR_MANIFEST_PROCESSING_FAILED: boom" if state == "failed" else "",
    )


@pytest.fixture
def rolling():
    """Policy "EU requires storage-ta (latest)", 1.0 released; one member device per state,
    a retired member and a device outside the group."""
    now = timezone.now()
    storage = TrustedComponentFactory(name="storage-ta")
    v1 = version_of(storage, 1)
    ComponentVersion.objects.filter(pk=v1.pk).update(released_at=now - timedelta(hours=2))
    v1.refresh_from_db()
    group = DeviceGroupFactory(name="EU", tags=["eu"])
    policy = PolicyFactory(group=group, component=storage)
    Policy.objects.filter(pk=policy.pk).update(updated_at=now - timedelta(hours=1))
    policy.refresh_from_db()
    recent = now - timedelta(minutes=5)

    def member(name, **kwargs):
        device = DeviceFactory(name=name, **kwargs)
        device.tags.set(group.tags.all())
        return device

    devices = {
        "installed": member("has-it", state="active", last_contact_at=recent),
        "pending": member("asked", state="active", last_contact_at=recent),
        "failed": member("broke", state="active", last_contact_at=recent),
        "not_contacted": member("silent", state="registered"),
        "not_offered": member("exempted", state="active", last_contact_at=recent),
    }
    install(devices["installed"], v1)
    deliver(devices["installed"], v1, "succeeded")
    deliver(devices["pending"], v1, "sent")
    deliver(devices["failed"], v1, "sent")
    deliver(devices["failed"], v1, "failed")  # the latest delivery decides
    retired = member("gone", state="retired", last_contact_at=recent)
    install(retired, v1)
    DeviceFactory(name="elsewhere", state="active")
    return {"policy": policy, "v1": v1, "storage": storage, "devices": devices, "group": group}


def test_each_member_is_counted_in_exactly_one_state(rolling):
    counts = rollout.rollout_counts(rollout.policy_rollout(rolling["policy"]))
    assert counts == {
        "total": 5,
        "installed": 1,
        "pending": 1,
        "failed": 1,
        "not_contacted": 1,
        "not_offered": 1,
    }


def test_the_version_rollout_counts_the_same_devices_while_policy_targets_it(rolling):
    counts = rollout.rollout_counts(rollout.version_rollout(rolling["v1"]))
    assert counts["total"] == 5 and counts["installed"] == 1 and counts["failed"] == 1


def test_a_newer_release_restarts_the_policy_rollout_toward_it(rolling):
    v2 = version_of(rolling["storage"], 2)
    counts = rollout.rollout_counts(rollout.policy_rollout(rolling["policy"]))
    # Nobody holds 2.0 yet; the devices seen before its release are "not contacted".
    assert counts["installed"] == 0 and counts["total"] == 5
    assert counts["not_contacted"] == 5
    # 1.0's own rollout now only counts the devices it reached.
    old = rollout.rollout_counts(rollout.version_rollout(rolling["v1"]))
    assert (old["total"], old["installed"], old["pending"], old["failed"]) == (3, 1, 1, 1)
    assert v2


def test_holding_a_newer_version_counts_as_installed(rolling):
    newer = version_of(rolling["storage"], 5)
    device = rolling["devices"]["not_offered"]
    install(device, newer)
    Policy.objects.filter(pk=rolling["policy"].pk).update(version=rolling["v1"])
    rolling["policy"].refresh_from_db()
    counts = rollout.rollout_counts(rollout.policy_rollout(rolling["policy"]))
    assert counts["installed"] == 2 and counts["not_offered"] == 0


def test_counting_costs_the_same_queries_for_a_bigger_fleet(rolling):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            rollout.rollout_counts(
                rollout.policy_rollout(Policy.objects.get(pk=rolling["policy"].pk))
            )
        return len(captured)

    before = queries()
    for n in range(30):
        device = DeviceFactory(name=f"more-{n}", state="active")
        device.tags.set(rolling["group"].tags.all())
        deliver(device, rolling["v1"], "failed")
    # the policy, its group and component, the target, the group's tags and rules, the count
    assert queries() == before <= 7


@pytest.mark.parametrize("state", rollout.ROLLOUT_STATES)
def test_the_device_list_filtered_to_a_state_shows_exactly_its_devices(rolling, state):
    client, _ = client_for(roles.VIEWER)
    url = (
        reverse("admin:devices_device_changelist")
        + f"?rollout=policy-{rolling['policy'].pk}-{state}"
    )
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    for other, device in rolling["devices"].items():
        assert (f">{device.name}<" in html) == (other == state), (state, other)
    assert "EU: storage-ta 1.0" in html  # the applied filter says which rollout


@pytest.mark.parametrize(
    "value",
    [
        "policy-999999-failed",
        "policy-x-failed",
        "version-1-nonsense",
        "garbage",
        "policy--",
        "version-99999999999999999999999-failed",
    ],
)
def test_a_bad_rollout_filter_shows_nothing_and_never_fails(rolling, value):
    client, _ = client_for(roles.VIEWER)
    page = client.get(reverse("admin:devices_device_changelist") + f"?rollout={value}")
    assert page.status_code == 200
    assert "has-it" not in page.content.decode()


def test_policy_and_version_pages_show_the_rollout_with_links_per_state(rolling):
    client, _ = client_for(roles.VIEWER)
    policy_page = client.get(
        reverse("admin:policies_policy_change", args=[rolling["policy"].pk])
    ).content.decode()
    assert "1 of 5 devices installed (20 %)" in policy_page
    assert f"?rollout=policy-{rolling['policy'].pk}-failed" in policy_page
    version_page = client.get(
        reverse("admin:components_componentversion_change", args=[rolling["v1"].pk])
    ).content.decode()
    assert "1 of 5 devices installed" in version_page
    assert f"?rollout=version-{rolling['v1'].pk}-pending" in version_page


def test_the_rollouts_page_lists_required_policies_with_their_progress(rolling):
    client, _ = client_for(roles.VIEWER)
    page = client.get(reverse("admin:policies_policy_rollouts"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "EU: storage-ta 1.0" in html and "1 of 5 devices installed" in html
