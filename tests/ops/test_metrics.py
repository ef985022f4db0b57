"""Prometheus metrics at /metrics: scraped after real exchanges, protected, bounded labels,
merged across gunicorn workers (PROMETHEUS_MULTIPROC_DIR)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from apps.ops import metrics

ROOT = Path(__file__).resolve().parent.parent.parent
TEEP = "application/teep+cbor"
TOKEN = "scrape-token-for-tests-0123456789"


def samples(text: str) -> dict[tuple, float]:
    """{(sample name, sorted label items): value}"""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(scraped: dict, name: str, **labels) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def scraper(settings):
    settings.METRICS_ENABLED = True
    settings.METRICS_TOKEN = TOKEN
    client = Client(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    def scrape() -> dict:
        response = client.get("/metrics")
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/plain")
        return samples(response.content.decode())

    return scrape


@pytest.mark.django_db
def test_metrics_count_a_teep_exchange_and_its_duration(client, scraper):
    before = scraper()
    assert client.post("/tam", data=b"", content_type=TEEP, HTTP_ACCEPT=TEEP).status_code == 200
    after = scraper()
    labels = {"message": "connect", "outcome": "query-request"}
    assert value(after, "tam_teep_exchanges_total", **labels) == (
        value(before, "tam_teep_exchanges_total", **labels) + 1
    )
    assert value(after, "tam_teep_exchange_seconds_count", message="connect") == (
        value(before, "tam_teep_exchange_seconds_count", message="connect") + 1
    )


@pytest.mark.django_db
def test_metrics_count_drops_by_reason_category(client, scraper):
    before = scraper()
    client.post("/tam", data=b"\xff not cbor", content_type=TEEP, HTTP_ACCEPT=TEEP)
    after = scraper()
    assert value(after, "tam_teep_drops_total", reason="not-cose") == (
        value(before, "tam_teep_drops_total", reason="not-cose") + 1
    )


@pytest.mark.django_db
def test_metrics_count_refusals_that_write_no_audit_row(client, scraper, settings):
    from django.core.cache import cache

    cache.clear()
    settings.TEEP_RATE_LIMIT_PER_SOURCE = "1/60"
    before = scraper()
    for _ in range(2):
        client.post("/tam", data=b"", content_type=TEEP, HTTP_ACCEPT=TEEP)
    after = scraper()
    labels = {"message": "connect", "outcome": "rate-limited"}
    assert value(after, "tam_teep_exchanges_total", **labels) == (
        value(before, "tam_teep_exchanges_total", **labels) + 1
    )
    cache.clear()


@pytest.mark.parametrize(
    ("reason", "category"),
    [
        ("not a COSE_Sign1/COSE_Sign message: bad CBOR", "not-cose"),
        ("invalid TEEP message: token too short", "invalid-message"),
        ("signature does not verify with the agent's key: bad", "signature"),
        ("the message's kid is not the attested key (cnf)", "signature"),
        ("device is retired", "retired-device"),
        ("unknown agent key: success refused (kid 00)", "unknown-key"),
        ("agent key not trusted (attestation required): error refused (kid 00)", "untrusted-key"),
        ("suit-reports[0] nonce does not match the token", "suit-report"),
        ("unknown, expired or already used token", "token"),
        ("Success without a token: the TAM always sends one in an Update", "token"),
        ("unknown, expired or already used challenge", "challenge"),
        ("Evidence without eat_nonce: the challenge cannot be checked", "challenge"),
        ("attestation payload unusable: bad EAT", "attestation"),
        ("attestation still being appraised: 503", "attestation"),
        ("a TEEP Agent does not send update messages", "unexpected-message"),
        ("agent signs with an algorithm the TAM does not accept (-35)", "algorithm"),
        ("Host 'token.example' not admitted for /tam (neither ALLOWED_HOSTS nor ...)", "host"),
        ("anything else, e.g. a reason added later", "other"),
    ],
)
def test_drop_reasons_fall_into_a_fixed_set_of_categories(reason, category):
    assert metrics.drop_category(reason) == category


@pytest.mark.django_db
def test_verifier_latency_is_measured(scraper):
    from apps.attestation import services as attestation
    from apps.teep.wire.evidence import make_evidence
    from apps.teep.wire.keys import TeepKey

    attester = TeepKey.generate("p256")
    attestation.register_attestation_key(public_key_bytes=attester.public_pem(), name="attester")
    agent_key = TeepKey.generate("p256")
    challenge = os.urandom(32)
    evidence, media_type = make_evidence(
        attester_key=attester, challenge=challenge, agent_public_key=agent_key.public(),
        ueid=b"\x01" + os.urandom(16), oemid=b"\x89\x48\x23", hwmodel=b"m", hwversion="1",
    )
    before = scraper()
    attestation.appraise(evidence=evidence, media_type=media_type, challenge=challenge,
                         agent_key=agent_key)
    after = scraper()
    name, labels = "tam_verifier_seconds_count", {"backend": "builtin", "outcome": "ok"}
    assert value(after, name, **labels) == value(before, name, **labels) + 1


@pytest.mark.django_db
def test_fanout_progress_is_read_at_scrape_time(scraper):
    from apps.components.models import ComponentVersion
    from apps.policies.models import CompromiseResponse, QueuedAction
    from tests.components.factories import TrustedComponentFactory
    from tests.policies.factories import DeviceFactory

    component = TrustedComponentFactory()
    version = ComponentVersion.objects.create(component=component, sequence_number=1,
                                              delivery="uri", state="compromised")
    response = CompromiseResponse.objects.create(version=version, reason="leaked key")
    for state in ("queued", "queued", "succeeded"):
        QueuedAction.objects.create(device=DeviceFactory(), component=component, kind="remove",
                                    state=state, compromise=response)
    scraped = scraper()
    assert value(scraped, "tam_compromise_fanouts_running") == 1
    assert value(scraped, "tam_compromise_removals", state="queued") == 2
    assert value(scraped, "tam_compromise_removals", state="succeeded") == 1
    assert value(scraped, "tam_backend_up", backend="database") == 1


@pytest.mark.django_db
def test_celery_queue_depth_is_read_from_redis(scraper, settings):
    import redis

    broker = os.environ.get("CELERY_BROKER_URL", "")
    if not broker.startswith("redis://"):
        pytest.skip("no Redis broker configured (CELERY_BROKER_URL)")
    url = broker.rsplit("/", 1)[0] + "/13"
    settings.CELERY_BROKER_URL = url
    client = redis.Redis.from_url(url)
    client.delete("celery")
    client.rpush("celery", b"m1", b"m2", b"m3")
    try:
        scraped = scraper()
    finally:
        client.delete("celery")
    assert value(scraped, "tam_celery_queue_length", queue="celery") == 3
    assert value(scraped, "tam_backend_up", backend="broker") == 1


def test_metrics_are_off_unless_enabled(client, settings):
    settings.METRICS_ENABLED = False
    assert client.get("/metrics").status_code == 404


def test_metrics_need_the_token_when_one_is_set(settings):
    settings.METRICS_ENABLED = True
    settings.METRICS_TOKEN = TOKEN
    assert Client().get("/metrics").status_code == 401
    assert Client(HTTP_AUTHORIZATION="Bearer wrong").get("/metrics").status_code == 401
    assert Client(HTTP_AUTHORIZATION=f"Token {TOKEN}").get("/metrics").status_code == 401


WORKER = """
import django
django.setup()
from apps.ops import metrics
metrics.count_exchange(message="connect", outcome="query-request", seconds=0.01)
"""


@pytest.mark.django_db
def test_several_worker_processes_are_merged_with_prometheus_multiproc_dir(tmp_path):
    """Two processes (as two gunicorn workers would) count into one directory; a scrape in a
    third sees the sum."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
           "DJANGO_SETTINGS_MODULE": "tam_portal.settings"}
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", WORKER], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    assert len(list(tmp_path.glob("counter_*.db"))) == 2
    scraped = samples(metrics.render(multiprocess_dir=str(tmp_path)).decode())
    labels = {"message": "connect", "outcome": "query-request"}
    assert value(scraped, "tam_teep_exchanges_total", **labels) == 2
