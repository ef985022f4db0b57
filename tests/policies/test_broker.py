"""The compromise fan-out through a real Redis broker and a real worker process, including a
worker killed in the middle: after restart, every device still gets exactly one removal."""

import signal
import time
import uuid

import pytest

from apps.components.models import ComponentVersion
from apps.devices.models import Device, InstalledComponent
from apps.policies import services
from apps.policies.models import CompromiseResponse, QueuedAction
from apps.policies.tasks import fan_out_compromise
from tests.test_celery_broker import real_broker, start_worker  # noqa: F401

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def fleet_holding(version, count):
    devices = Device.objects.bulk_create(Device(kid=f"{n:064x}", public_key=b"\xa0") for n in range(count))
    InstalledComponent.objects.bulk_create(
        InstalledComponent(device=d, component_key=version.component.component_id, component=version.component,
                           version=version, sequence_number=version.sequence_number) for d in devices
    )
    return devices


def wait_for(condition, worker, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        assert worker.poll() is None, worker.stderr.read().decode()[-3000:]
        time.sleep(0.02)
    raise AssertionError("timed out")


def assert_one_removal_per_device(response, count):
    assert QueuedAction.objects.filter(compromise=response).count() == count
    assert QueuedAction.objects.filter(compromise=response).values("device").distinct().count() == count


@pytest.fixture
def queue(real_broker, monkeypatch):  # noqa: F811
    name = f"test-{uuid.uuid4().hex}"
    # mark_compromised enqueues after commit: send it to this test's worker.
    monkeypatch.setattr(fan_out_compromise, "delay", lambda pk: fan_out_compromise.apply_async(
        (pk,), {"batch_size": 50}, queue=name))
    return name


def test_fan_out_after_commit_runs_in_a_real_worker(trusted_app, queue):
    fleet_holding(trusted_app, 400)
    worker = start_worker(queue)
    try:
        response = services.mark_compromised(trusted_app, actor=None, reason="CVE-2026-0002")
        wait_for(lambda: CompromiseResponse.objects.get(pk=response.pk).fanout_finished_at, worker)
        assert_one_removal_per_device(response, 400)
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_worker_killed_mid_fan_out_then_restarted_gives_one_removal_per_device(trusted_app, queue, monkeypatch):
    total = 3000
    fleet_holding(trusted_app, total)
    ComponentVersion.objects.filter(pk=trusted_app.pk).update(state="compromised")
    response = CompromiseResponse.objects.create(version=trusted_app, reason="test", holders_at_mark=total)
    worker = start_worker(queue)
    try:
        fan_out_compromise.apply_async((response.pk,), {"batch_size": 10}, queue=queue)
        wait_for(lambda: QueuedAction.objects.count() >= 300, worker)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    done = QueuedAction.objects.count()
    assert 0 < done < total, "the worker was not killed in the middle of the fan-out"
    assert CompromiseResponse.objects.get(pk=response.pk).fanout_finished_at is None

    # The killed worker's message stays unacknowledged until the visibility timeout; the
    # beat sweeper resumes a stalled fan-out meanwhile (here: at once).
    monkeypatch.setattr(services, "FANOUT_STALL_AFTER", services.FANOUT_STALL_AFTER * 0)
    worker = start_worker(queue)
    try:
        for response_id in services.stalled_fanouts():
            fan_out_compromise.apply_async((response_id,), {"batch_size": 10}, queue=queue)
        # And a duplicate of it at the same time (two resumptions racing).
        fan_out_compromise.apply_async((response.pk,), {"batch_size": 10}, queue=queue)
        wait_for(lambda: CompromiseResponse.objects.get(pk=response.pk).fanout_finished_at, worker)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert_one_removal_per_device(response, total)
