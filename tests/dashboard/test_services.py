"""fleet_overview: right numbers for a small fleet, a fixed number of queries, cached."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.dashboard import services
from apps.dashboard.services import fleet_overview
from tests.dashboard.conftest import attest, install, version_of
from tests.policies.factories import DeviceFactory

pytestmark = pytest.mark.django_db
# 15 aggregates and short lists, plus one progress query per compromise response shown and,
# per rollout shown, its target version, its group's tags and rules and one aggregate.
MAX_QUERIES = 19 + services.COMPROMISES_SHOWN + 4 * services.ROLLOUTS_SHOWN


def by(rows, key, value="count"):
    return {row[key]: row[value] for row in rows}


def test_devices_by_state_and_last_contact(fleet):
    devices = fleet_overview(fleet["now"])["devices"]
    assert devices["total"] == 5
    assert by(devices["by_state"], "state") == {
        "registered": 1,
        "active": 2,
        "untrusted": 1,
        "retired": 1,
    }
    # The retired device is not in service: not in the histogram.
    assert by(devices["last_contact"], "key") == {
        "hour": 1,
        "day": 1,
        "week": 1,
        "older": 0,
        "never": 1,
    }


def test_attestation_status_is_the_latest_appraisal_with_stale_affirmations_apart(fleet):
    counts = by(fleet_overview(fleet["now"])["attestation"]["counts"], "status")
    assert counts == {
        "affirming": 1,
        "stale": 1,
        "warning": 0,
        "contraindicated": 1,
        "none": 0,
        "never": 1,
    }


def test_attestation_validity_is_the_attestation_setting(fleet, settings):
    settings.ATTESTATION_VALIDITY_SECONDS = 7 * 86400
    counts = by(fleet_overview(fleet["now"])["attestation"]["counts"], "status")
    assert counts["affirming"] == 2 and counts["stale"] == 0


def test_components_list_devices_per_version_most_installed_first(fleet):
    components = fleet_overview(fleet["now"])["components"]
    assert [c["name"] for c in components] == ["storage-ta", "wallet-ta"]
    storage = components[0]
    assert storage["devices"] == 4
    assert [(v["label"], v["state"], v["devices"]) for v in storage["versions"]] == [
        ("2.0", "released", 1),
        ("1.0", "compromised", 2),
        ("unrecognised", "", 1),
    ]


def test_older_versions_beyond_the_first_few_are_summed(fleet):
    storage = fleet["storage"]
    extra = [version_of(storage, n) for n in range(3, 3 + services.VERSIONS_PER_COMPONENT)]
    for n, version in enumerate(extra):
        install(DeviceFactory(name=f"extra-{n}"), version)
    (storage_row,) = [
        c for c in fleet_overview(fleet["now"])["components"] if c["id"] == storage.pk
    ]
    labels = [v["label"] for v in storage_row["versions"]]
    assert len(labels) == services.VERSIONS_PER_COMPONENT
    assert labels[0] == f"{2 + services.VERSIONS_PER_COMPONENT}.0"
    assert labels[-1] == "4 older"  # 2.0, 1.0, 3.0 and the unrecognised one
    assert sum(v["devices"] for v in storage_row["versions"]) == storage_row["devices"] == 10


def test_compromise_in_progress_carries_the_policies_progress(fleet):
    compromises = fleet_overview(fleet["now"])["compromises"]
    (item,) = compromises["items"]
    assert item["version_id"] == fleet["v1"].pk and item["holders_at_mark"] == 2
    assert (
        item["total"],
        item["not_contacted"],
        item["pending"],
        item["removed"],
        item["failed"],
    ) == (2, 2, 0, 0, 0)
    assert item["fanout_finished"] is True and compromises["more"] is False


def test_a_settled_compromise_stays_for_a_month_after_its_fan_out(fleet):
    """Issue 14: the response no longer vanishes when its fan-out ends or its holders settle."""
    from apps.policies.models import CompromiseResponse, QueuedAction

    QueuedAction.objects.filter(compromise=fleet["response"]).update(state="succeeded")
    (item,) = fleet_overview(fleet["now"])["compromises"]["items"]
    assert item["removed"] == 2 and item["segments"]["removed"] == 2
    CompromiseResponse.objects.filter(pk=fleet["response"].pk).update(
        marked_at=fleet["now"] - timedelta(days=31)
    )
    assert fleet_overview(fleet["now"])["compromises"]["items"] == []


def test_an_old_compromise_with_removals_still_open_stays(fleet):
    from apps.policies.models import CompromiseResponse

    CompromiseResponse.objects.filter(pk=fleet["response"].pk).update(
        marked_at=fleet["now"] - timedelta(days=90)
    )
    (item,) = fleet_overview(fleet["now"])["compromises"]["items"]
    assert item["segments"]["not_contacted"] == 2


def test_retired_devices_leave_the_counts_of_devices_in_service(fleet):
    overview = fleet_overview(fleet["now"])
    assert overview["totals"]["devices"] == 4 and overview["devices"]["retired"] == 1
    from apps.devices.services import retire_device

    retire_device(fleet["devices"][1], actor=None, reason="scrapped")  # "older" held storage 1.0
    overview = fleet_overview(fleet["now"])
    assert overview["totals"]["devices"] == 3 and overview["devices"]["retired"] == 2
    (storage,) = [c for c in overview["components"] if c["name"] == "storage-ta"]
    assert storage["devices"] == 3  # fresh, shady, never; not older any more
    # Its removal cannot be delivered any more: cancelled, so the response can settle.
    (item,) = overview["compromises"]["items"]
    assert item["cancelled"] == 1 and item["segments"]["not_contacted"] == 1


def test_recent_failures(fleet):
    failures = fleet_overview(fleet["now"])["failures"]
    (delivery,) = failures["failed_deliveries"]
    assert (
        delivery["device"] == "fresh"
        and delivery["reason"] == "ERR_MANIFEST_PROCESSING_FAILED: boom"
    )
    assert failures["failed_deliveries_week"] == 1
    (dropped,) = failures["dropped"]
    assert dropped["device"] == "older" and dropped["reason"] == "signature does not verify"
    assert dropped["device_id"] == fleet["devices"][1].pk
    (error,) = failures["agent_errors"]
    assert error["device"] == "shady" and error["error"] == "ERR_TEMPORARY_ERROR busy"
    assert failures["last_day"] == {"exchanges": 3, "dropped": 1, "agent_errors": 1}


def test_totals(fleet):
    totals = fleet_overview(fleet["now"])["totals"]
    assert totals == {
        "devices": 4,  # in service: the retired one is not counted
        "components": 2,
        "versions": 3,
        "released": 2,
        "compromised": 1,
        "groups": 0,
        "policies": 0,
        "open_actions": 2,
    }


def test_an_empty_database_gives_zeros():
    overview = fleet_overview(timezone.now())
    assert overview["devices"]["total"] == 0 and overview["components"] == []
    assert sum(c["count"] for c in overview["attestation"]["counts"]) == 0


def queries(now) -> int:
    with CaptureQueriesContext(connection) as captured:
        fleet_overview(now)
    return len(captured)


def test_the_number_of_queries_does_not_grow_with_the_fleet(fleet, django_assert_max_num_queries):
    with django_assert_max_num_queries(MAX_QUERIES):
        fleet_overview(fleet["now"])
    before = queries(fleet["now"])
    for n in range(30):
        device = DeviceFactory(state="active", last_contact_at=fleet["now"] - timedelta(minutes=n))
        install(device, fleet["v2"])
        attest(device, "affirming")
    assert queries(fleet["now"]) == before


def test_rollouts_are_the_latest_required_policies_with_bounded_queries(
    fleet, django_assert_max_num_queries
):
    from tests.policies.factories import DeviceGroupFactory, PolicyFactory

    groups = [DeviceGroupFactory(tags=[f"t{n}"]) for n in range(services.ROLLOUTS_SHOWN + 2)]
    for group in groups:
        PolicyFactory(group=group, component=fleet["storage"])
    with django_assert_max_num_queries(MAX_QUERIES):
        rollouts = fleet_overview(fleet["now"])["rollouts"]
    assert len(rollouts["items"]) == services.ROLLOUTS_SHOWN and rollouts["more"] is True
    assert rollouts["items"][0]["title"] == f"{groups[-1].name}: storage-ta 2.0"
    assert rollouts["items"][0]["counts"]["total"] == 0


def test_the_overview_is_cached_briefly(fleet, django_assert_num_queries):
    cache.delete(services.OVERVIEW_CACHE_KEY)
    first = services.cached_fleet_overview()
    with django_assert_num_queries(0):
        assert services.cached_fleet_overview() == first
    cache.delete(services.OVERVIEW_CACHE_KEY)
