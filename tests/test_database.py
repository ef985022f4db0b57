"""The database layer as production runs it (PostgreSQL, server-side binding on): statements
that carry many values still run. PostgreSQL takes at most 65,535 parameters per statement,
and with server-side binding psycopg sends every value as one."""

import pytest
from django.db import connection
from django.utils import timezone

from apps.devices.models import DeliveryItem, Device
from apps.tam.housekeeping import expire_unanswered_requests

pytestmark = pytest.mark.django_db

MORE_THAN_ONE_STATEMENT_HOLDS = 3000  # x 23 columns of a Device > 65,535 parameters


def test_registering_thousands_of_devices_at_once_works():
    Device.objects.bulk_create(
        Device(kid=f"{n:064x}", public_key=b"\xa0") for n in range(MORE_THAN_ONE_STATEMENT_HOLDS)
    )

    assert Device.objects.count() == MORE_THAN_ONE_STATEMENT_HOLDS


def test_housekeeping_expires_a_backlog_larger_than_one_statement_holds():
    if connection.vendor != "postgresql":
        pytest.skip("the parameter limit is PostgreSQL's")
    device = Device.objects.create(kid="ab" * 32, public_key=b"\xa0")
    now = timezone.now()
    backlog = 66_000
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO devices_deliveryitem (device_id, kind, component_key, manifest_key, manifest_digest,"
            " state, reason, retryable, created_at, expires_at)"
            " SELECT %s, 'install', 'c' || n, '', '', 'sent', '', false, %s, %s FROM generate_series(1, %s) n",
            [device.pk, now, now, backlog],
        )

    assert expire_unanswered_requests(now=now)["deliveries_expired"] == backlog
    assert not DeliveryItem.objects.filter(state=DeliveryItem.State.SENT).exists()
