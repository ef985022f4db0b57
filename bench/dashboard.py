"""The fleet dashboard (admin index) and the device pages at fleet scale.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tam_bench \
        .venv/bin/python bench/dashboard.py --devices 100000

In a scratch database (test_<name>, created and dropped here, as bench/fanout.py does): a
fleet generated in bulk (batches of --batch) with a spread of states and last contacts, two
or three installed components per device over several versions, attestation records for a
third of the devices, failed deliveries, TEEP exchanges in the audit trail, one compromise
response being fanned out. Then, as a logged-in superuser whose second factor is verified:
  - fleet_overview() uncached (median of --repeat) and its query count;
  - the admin index with the overview computed (cache cleared) and from the cache;
  - the admin device list and one device's page.
"""

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tam_portal.settings")
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "true")
os.environ.setdefault("DATA_DIR", "/tmp/tam-bench-data")

STATES = ["active"] * 7 + ["registered", "untrusted", "retired"]
CONTACT_AGES_MIN = [None, 10, 50, 300, 2000, 6000, 20000, 60000]
ATTESTATION = ["affirming", "affirming", "affirming", "warning", "contraindicated", "none"]


def timed(fn, repeat=1, before=None):
    samples, result = [], None
    for _ in range(repeat):
        if before:
            before()
        start = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), result


def build_fleet(size: int, batch: int) -> dict:
    from django.utils import timezone
    from tqdm import tqdm

    from apps.attestation.models import AttestationRecord
    from apps.audit.models import AuditEvent
    from apps.components.models import ComponentVersion
    from apps.devices.models import DeliveryItem, Device, InstalledComponent
    from apps.policies import services as policies
    from tests.components.factories import TrustedComponentFactory

    now = timezone.now()
    components, versions = [], {}
    for c, count in enumerate((5, 3, 8)):
        component = TrustedComponentFactory(name=f"bench-ta-{c}")
        components.append(component)
        versions[component.pk] = [
            ComponentVersion.objects.create(
                component=component,
                version_label=f"{n}.0",
                sequence_number=n,
                envelope=b"\xa0",
                envelope_sha256=f"{c:032x}{n:032x}",
                delivery="uri",
                state="released",
                released_at=now,
            )
            for n in range(1, count + 1)
        ]
    progress = tqdm(total=size, desc="devices", unit="dev", file=sys.stderr)
    for start in range(0, size, batch):
        numbers = range(start, min(size, start + batch))
        devices = Device.objects.bulk_create(
            Device(
                kid=f"{n:064x}",
                public_key=b"\xa0",
                name=f"dev-{n}",
                state=STATES[n % len(STATES)],
                last_contact_at=None
                if CONTACT_AGES_MIN[n % 8] is None
                else now - timedelta(minutes=CONTACT_AGES_MIN[n % 8] + n % 37),
            )
            for n in numbers
        )
        rows = []
        for n, device in zip(numbers, devices, strict=True):
            for c, component in enumerate(components[: 2 + n % 2]):
                held = versions[component.pk]
                version = held[-1 - (n * (c + 1)) % min(len(held), 4)] if n % 50 else None
                rows.append(
                    InstalledComponent(
                        device=device,
                        component_key=component.component_id,
                        component=component,
                        version=version,
                        sequence_number=version.sequence_number if version else None,
                    )
                )
        InstalledComponent.objects.bulk_create(rows)
        AttestationRecord.objects.bulk_create(
            AttestationRecord(
                device=d,
                agent_kid=d.kid,
                backend="builtin",
                status=ATTESTATION[n % len(ATTESTATION)],
            )
            for n, d in zip(numbers, devices, strict=True)
            if n % 3 == 0
        )
        DeliveryItem.objects.bulk_create(
            DeliveryItem(
                device=d,
                kind="install",
                state="failed" if n % 40 else "succeeded",
                component_key=components[0].component_id,
                version=versions[components[0].pk][-1],
                reason="ERR_MANIFEST_PROCESSING_FAILED: bench" if n % 40 else "",
                settled_at=now,
            )
            for n, d in zip(numbers, devices, strict=True)
            if n % 20 == 0
        )
        AuditEvent.objects.bulk_create(
            AuditEvent(
                kind="teep_exchange",
                action="teep.error" if n % 97 == 0 else "teep.query-response",
                outcome="dropped" if n % 89 == 0 else "nothing-due",
                device_kid=d.kid,
                reason="bench",
                detail={"err_name": "ERR_TEMPORARY_ERROR"} if n % 97 == 0 else {},
            )
            for n, d in zip(numbers, devices, strict=True)
            if n % 5 == 0
        )
        progress.update(len(devices))
    progress.close()
    # One compromise response, its first fan-out batch done (in progress, as on a busy day).
    response = policies.mark_compromised(versions[components[0].pk][-2], actor=None, reason="bench")
    policies.fan_out_compromise_batch(response.pk)
    return {"device": Device.objects.order_by("pk").first()}


def verified_superuser_client():
    from django.contrib.auth import get_user_model
    from django.test import Client

    from tests.accounts.helpers import confirmed_totp_device, mark_session_verified

    user = get_user_model().objects.create_superuser("bench", password="bench-password-123")
    client = Client()
    client.force_login(user)
    mark_session_verified(client, confirmed_totp_device(user))
    return client


def measure(size: int, batch: int, repeat: int) -> dict:
    from django.core.cache import cache
    from django.core.management import call_command
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse
    from django.utils import timezone

    from apps.dashboard import services

    call_command("flush", interactive=False, verbosity=0)
    build_time, fleet = timed(lambda: build_fleet(size, batch))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    overview, result = timed(lambda: services.fleet_overview(timezone.now()), repeat=repeat)
    assert result["devices"]["total"] == size, result["devices"]
    reset_queries()  # DEBUG keeps at most 9000 queries: the capture would count 0
    with CaptureQueriesContext(connection) as captured:
        services.fleet_overview(timezone.now())

    client = verified_superuser_client()
    index = reverse("admin:index")
    page = client.get(index)
    assert page.status_code == 200 and b"The fleet at a glance" in page.content, page.status_code

    def uncached():
        cache.delete(services.OVERVIEW_CACHE_KEY)

    def get(url):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        return response

    index_cold, _ = timed(lambda: get(index), repeat=repeat, before=uncached)
    get(index)
    index_warm, _ = timed(lambda: get(index), repeat=repeat)
    device_list, _ = timed(lambda: get(reverse("admin:devices_device_changelist")), repeat=repeat)
    device_page, _ = timed(
        lambda: get(reverse("admin:devices_device_change", args=[fleet["device"].pk])),
        repeat=repeat,
    )
    return {
        "devices": size,
        "build_s": build_time,
        "overview_ms": overview * 1000,
        "overview_queries": len(captured),
        "index_uncached_ms": index_cold * 1000,
        "index_cached_ms": index_warm * 1000,
        "device_list_ms": device_list * 1000,
        "device_page_ms": device_page * 1000,
    }


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, nargs="+", default=[100000])
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("set DATABASE_URL=postgres://... (the bench creates and drops test_<name>)")

    import django

    django.setup()
    from django.test.utils import setup_databases, setup_test_environment, teardown_databases

    setup_test_environment()
    old = setup_databases(verbosity=0, interactive=False)
    try:
        from django.conf import settings

        settings.ALLOWED_HOSTS = ["testserver"]
        results = [measure(size, args.batch, args.repeat) for size in args.devices]
    finally:
        teardown_databases(old, verbosity=0)
    python = platform.python_version()
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, Python {python}")
    print(f"median of {args.repeat}; times in ms unless marked _s")
    columns = list(results[0])
    print(" | ".join(f"{c:>17}" for c in columns))
    for row in results:
        print(
            " | ".join(
                f"{row[c]:>17.1f}" if isinstance(row[c], float) else f"{row[c]:>17}"
                for c in columns
            )
        )


if __name__ == "__main__":
    main()
