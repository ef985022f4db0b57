"""Compromise fan-out, policy-check exchange and admin pages at fleet scale.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tam_bench \
        .venv/bin/python bench/fanout.py --devices 1000 100000

For each fleet size, in a scratch database (test_<name>, created and dropped here): a fleet
generated in bulk, every device holding version 1.0 of one TA, a group by tag and a
"required, latest released" policy; one real agent among them. Then it measures:
  - one policy-check exchange (empty POST -> QueryRequest -> QueryResponse -> nothing due),
    median of --exchanges, through the TAM state machine (no HTTP);
  - marking 1.0 compromised and the whole fan-out (eager, in-process: the database work a
    worker does), and the exchange that then carries the removal;
  - the admin's device list and one device's page (Django test client, median of 5).
The exchange ratio between the largest and smallest fleet should stay near 1.
"""

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tam_portal.settings")
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "true")
os.environ.setdefault("DATA_DIR", "/tmp/tam-bench-data")


def timed(fn, repeat=1):
    samples = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), result


def build_fleet(size, batch=5000):
    from django.core.files.base import ContentFile

    from apps.components import services as catalogue
    from apps.devices.models import Device, InstalledComponent, Tag
    from apps.devices.services import register_agent
    from apps.policies.models import DeviceGroup, Policy
    from apps.teep.wire.keys import TeepKey

    component = catalogue.create_component(
        name="bench-ta", component_id=[b"TEEP-Device", b"SecureFS", b"bench", b"ta"], actor=None
    )
    version = catalogue.upload_binary(
        component=component, binary_file=ContentFile(b"bench payload" * 100, name="bench.ta"),
        version_label="1.0", sequence_number=1, actor=None, release=True,
    )
    fixed = catalogue.upload_binary(
        component=component, binary_file=ContentFile(b"fixed payload" * 100, name="bench.ta"),
        version_label="1.1", sequence_number=2, actor=None, release=False,
    )
    tag = Tag.objects.create(name="fleet")
    group = DeviceGroup.objects.create(name="fleet")
    group.tags.add(tag)
    Policy.objects.create(group=group, component=component, effect="required")
    key = TeepKey.generate("p256")
    agent_device = register_agent(public_key_bytes=key.public_pem(), name="bench-agent", tags=["fleet"])
    through = Device.tags.through
    for start in range(0, size - 1, batch):
        devices = Device.objects.bulk_create(
            Device(kid=f"{n:064x}", public_key=b"\xa0", name=f"dev-{n}", state="active",
                   attributes={"hwmodel": f"model-{n % 7}"})
            for n in range(start, min(size - 1, start + batch))
        )
        through.objects.bulk_create(through(device_id=d.pk, tag_id=tag.pk) for d in devices)
        InstalledComponent.objects.bulk_create(
            InstalledComponent(device=d, component_key=component.component_id, component=component,
                               version=version, sequence_number=1, image_digest=version.binary_sha256)
            for d in devices
        )
    InstalledComponent.objects.create(device=agent_device, component_key=component.component_id,
                                      component=component, version=version, sequence_number=1,
                                      image_digest=version.binary_sha256)
    return key, agent_device, version, fixed


def exchange(agent, version):
    """One RequestPolicyCheck; returns the decoded Update or None."""
    import cbor2

    from apps.tam import engine
    from apps.teep.wire import messages

    answer = engine.process_connect(numbering=agent.numbering, source_ip="192.0.2.1")
    request = agent.read(answer.body)
    claims = {0: version.component.component_id_elements,
              3: cbor2.dumps([-16, bytes.fromhex(version.binary_sha256)])}
    answer = engine.process_teep_message(
        agent.sign(messages.QueryResponse(token=request.token, tc_list=(claims,))),
        numbering=agent.numbering, source_ip="192.0.2.1",
    )
    assert not answer.dropped, answer.reason
    return agent.read(answer.body) if answer.body else None


def measure(size, exchanges):
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from apps.policies import services
    from apps.policies.models import CompromiseResponse, QueuedAction
    from apps.teep.wire import messages
    from tests.tam.conftest import SimAgent

    call_command("flush", interactive=False, verbosity=0)
    build_time, (key, device, version, fixed) = timed(lambda: build_fleet(size))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    agent = SimAgent(key=key, device=device)
    exchange(agent, version)  # warm up
    steady, update = timed(lambda: exchange(agent, version), repeat=exchanges)
    assert update is None

    def compromise():
        response = services.mark_compromised(version, actor=None, reason="bench")
        while not services.fan_out_compromise_batch(response.pk):
            pass
        return response

    # mark_compromised's own on_commit fan-out runs eagerly too; count it in.
    fanout, response = timed(compromise)
    assert CompromiseResponse.objects.get(pk=response.pk).fanout_finished_at is not None
    queued = QueuedAction.objects.filter(compromise=response).count()
    assert queued == size, (queued, size)
    removal, update = timed(lambda: exchange(agent, version))
    assert update.unneeded_manifest_list
    from apps.tam import engine

    engine.process_teep_message(agent.sign(messages.Success(token=update.token)), numbering=agent.numbering)
    progress = services.compromise_progress(response)

    from tests.accounts.helpers import confirmed_totp_device, mark_session_verified

    user = get_user_model().objects.create_superuser("bench", password="bench-password-123")
    client = Client()
    client.force_login(user)
    # Superusers must pass the second factor (apps.accounts): mark this session as having done so.
    mark_session_verified(client, confirmed_totp_device(user))
    list_url = reverse("admin:devices_device_changelist")
    page_url = reverse("admin:devices_device_change", args=[device.pk])
    assert client.get(list_url).status_code == 200
    admin_list, _ = timed(lambda: client.get(list_url), repeat=5)
    admin_page, _ = timed(lambda: client.get(page_url), repeat=5)
    progress_page, _ = timed(lambda: services.compromise_progress(response), repeat=5)
    return {
        "devices": size,
        "build_s": build_time,
        "exchange_ms": steady * 1000,
        "compromise_fanout_s": fanout,
        "removal_exchange_ms": removal * 1000,
        "admin_device_list_ms": admin_list * 1000,
        "admin_device_page_ms": admin_page * 1000,
        "progress_ms": progress_page * 1000,
        "removed": progress["removed"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, nargs="+", default=[1000, 100000])
    parser.add_argument("--exchanges", type=int, default=20)
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
        settings.TEEP_RATE_LIMIT_PER_DEVICE = settings.TEEP_RATE_LIMIT_PER_SOURCE = "1000000/60"
        results = [measure(size, args.exchanges) for size in args.devices]
    finally:
        teardown_databases(old, verbosity=0)
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    columns = list(results[0])
    print(" | ".join(f"{c:>20}" for c in columns))
    for row in results:
        print(" | ".join(f"{row[c]:>20.1f}" if isinstance(row[c], float) else f"{row[c]:>20}" for c in columns))
    if len(results) > 1:
        print(f"exchange cost ratio {results[-1]['devices']}/{results[0]['devices']} devices: "
              f"{results[-1]['exchange_ms'] / results[0]['exchange_ms']:.2f}")


if __name__ == "__main__":
    main()
