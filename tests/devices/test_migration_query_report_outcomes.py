"""Upgrading a database that holds SUIT reports: each device starts out remembering the
newest QueryResponse report outcome per manifest digest, so the first check after the
upgrade stores no duplicate of a report it already has."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from datetime import timedelta

from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("devices", "0006_fast_path")]
AFTER = [("devices", "0007_query_report_outcomes")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_the_upgrade_remembers_each_devices_newest_report_outcome_per_manifest():
    old = migrate(BEFORE)
    Device, SuitReport = old.get_model("devices", "Device"), old.get_model("devices", "SuitReport")
    device = Device.objects.create(kid="ab" * 32, public_key=b"\xa0")
    quiet = Device.objects.create(kid="cd" * 32, public_key=b"\xa0")
    now = timezone.now()
    for seconds, digest, success, kind in [
        (1, "aa", False, "query-response"),
        (2, "aa", True, "query-response"),  # the newest for aa
        (3, "bb", False, "query-response"),
        (4, "bb", True, "success"),  # not a boot-time report
    ]:
        SuitReport.objects.create(device=device, message_type=kind, raw=b"", parsed={}, success=success,
                                  manifest_digest=digest, received_at=now + timedelta(seconds=seconds))

    new = migrate(AFTER)

    Device = new.get_model("devices", "Device")
    assert Device.objects.get(pk=device.pk).query_report_outcomes == {"aa": True, "bb": False}
    assert Device.objects.get(pk=quiet.pk).query_report_outcomes == {}
