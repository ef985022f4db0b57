"""Tasks through a real Celery broker (Redis) and a real worker process."""

import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from apps.devices.models import DeliveryItem, Device
from apps.tam.tasks import expire_unanswered_requests

ROOT = Path(__file__).resolve().parent.parent
BROKER = os.environ.get("CELERY_BROKER_URL", "")


def start_worker(queue: str) -> subprocess.Popen:
    """A worker on the test database (its name is only known inside the test)."""
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": BROKER,
        "SECRET_KEY": "broker-test-only",
        "ALLOWED_HOSTS": "localhost",
        "TAM_GENERATE_DEVELOPMENT_KEYS": "true",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tam_portal", "worker", "--pool=solo", "-Q", queue,
         "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


@pytest.fixture
def real_broker(celery_eager):
    if not BROKER:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must provide CELERY_BROKER_URL")
        pytest.skip("no CELERY_BROKER_URL: the real-broker tests need Redis")
    if connection.vendor != "postgresql":
        pytest.skip("a worker process cannot share the in-memory test database")
    celery_eager.conf.task_always_eager = False
    celery_eager.conf.broker_url = BROKER
    yield celery_eager


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_task_runs_in_a_real_worker_through_redis(real_broker):
    device = Device.objects.create(kid="ab" * 32, public_key=b"\xa0")
    delivery = DeliveryItem.objects.create(device=device, update_token=b"q" * 40, kind="install", component_key="81",
                                           expires_at=timezone.now() - timedelta(seconds=1))
    queue = f"test-{uuid.uuid4().hex}"
    worker = start_worker(queue)
    try:
        expire_unanswered_requests.apply_async(queue=queue)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            delivery.refresh_from_db()
            if delivery.state == "expired":
                break
            assert worker.poll() is None, worker.stderr.read().decode()[-2000:]
            time.sleep(0.2)
        assert delivery.state == "expired"
    finally:
        worker.terminate()
        worker.wait(timeout=30)
