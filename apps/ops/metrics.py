"""Prometheus metrics (prometheus-client), scraped at /metrics (apps/ops/endpoints.py).

Counted where things happen:
  tam_teep_exchanges_total{message, outcome}   every TEEP exchange (one per audit row, plus
                                               the HTTP-level refusals that write none)
  tam_teep_exchange_seconds{message}           time the TAM spent on it
  tam_teep_drops_total{reason}                 dropped messages, reasons in DROP_CATEGORIES
  tam_verifier_seconds{backend, outcome}       one appraisal by the Verifier
  tam_backend_unavailable_total{backend}       answers 503 because a backend was unreachable
  tam_ratelimit_unenforced_total               requests let through with the cache down
Computed at scrape time (one small query each):
  tam_celery_queue_length{queue}               messages waiting in each Celery queue (Redis)
  tam_backend_up{backend}                      1 if the database / broker answered the scrape
  and what METRICS_COLLECTORS adds: apps/policies/metrics.py, the compromise fan-out's progress
  (tam_compromise_fanouts_running, tam_compromise_removals{state}).

This module imports nothing of the project's apps (they import it): apps report through
METRICS_COLLECTORS, or call count_* where things happen.

Every label takes values from a fixed set, so the number of series stays bounded.

Several gunicorn workers (and Celery workers on the same host): set PROMETHEUS_MULTIPROC_DIR
to an empty directory, the same for all of them, before they start (README "Operations").
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger(__name__)

MESSAGES = ("connect", "query-request", "query-response", "update", "success", "error")
OUTCOMES = (
    "query-request", "update", "nothing-due", "dropped",  # the TAM's answers (TamAnswer)
    "rate-limited", "unavailable", "rejected", "error",  # refused before or around it (HTTP)
)
# Dropped-message reasons (free text in the audit row) by category: first match wins.
DROP_CATEGORIES = (
    # First: the text after it is the client's Host header, which could contain any word below.
    ("not admitted for", "host"),
    ("not a COSE", "not-cose"),
    ("invalid TEEP message", "invalid-message"),
    ("signature does not verify", "signature"),
    ("kid is not the attested key", "signature"),
    ("device is retired", "retired-device"),
    ("unknown agent key", "unknown-key"),
    ("not trusted", "untrusted-key"),
    ("suit-reports", "suit-report"),
    ("token", "token"),
    ("challenge", "challenge"),
    ("eat_nonce", "challenge"),
    ("attestation", "attestation"),
    ("affirming", "attestation"),
    ("does not send", "unexpected-message"),
    ("algorithm", "algorithm"),
)
OTHER = "other"

EXCHANGES = Counter(
    "tam_teep_exchanges", "TEEP exchanges by incoming message type and outcome",
    ["message", "outcome"],
)
EXCHANGE_SECONDS = Histogram(
    "tam_teep_exchange_seconds", "Time the TAM spent on one TEEP exchange", ["message"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DROPS = Counter("tam_teep_drops", "Dropped TEEP messages by reason category", ["reason"])
VERIFIER_SECONDS = Histogram(
    "tam_verifier_seconds", "One appraisal by the Verifier", ["backend", "outcome"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BACKEND_UNAVAILABLE = Counter(
    "tam_backend_unavailable", "Requests answered 503 because a backend was unreachable",
    ["backend"],
)
RATELIMIT_UNENFORCED = Counter(
    "tam_ratelimit_unenforced", "Requests let through unlimited because the cache was down"
)


def _bounded(value: str, allowed: tuple[str, ...]) -> str:
    return value if value in allowed else OTHER


def drop_category(reason: str) -> str:
    return next((category for text, category in DROP_CATEGORIES if text in reason), OTHER)


def count_exchange(*, message: str, outcome: str, reason: str = "", seconds: float | None = None):
    message = _bounded(message, MESSAGES)
    EXCHANGES.labels(message, _bounded(outcome, OUTCOMES)).inc()
    if seconds is not None:
        EXCHANGE_SECONDS.labels(message).observe(seconds)
    if outcome == "dropped":
        DROPS.labels(drop_category(reason)).inc()


def count_backend_unavailable(backend: str) -> None:
    BACKEND_UNAVAILABLE.labels(_bounded(backend, ("database", "cache", "broker", "verifier"))).inc()


@contextmanager
def time_verifier(backend: str, *, unavailable: type[BaseException]):
    """Around one call of the Verifier: its latency, by how it ended (`unavailable`: the
    exception that means the Verifier could not be reached)."""
    started = time.monotonic()
    outcome = "ok"
    try:
        yield
    except unavailable:
        outcome = "unavailable"
        raise
    except Exception:
        outcome = "error"
        raise
    finally:
        VERIFIER_SECONDS.labels(_bounded(backend, ("builtin", "veraison")), outcome).observe(
            time.monotonic() - started
        )


# --- scrape ------------------------------------------------------------------------------------


class ScrapeTimeCollector:
    """Gauges read when Prometheus scrapes (the same numbers whichever worker answers): the
    backends, the Celery queues, and what the apps listed in METRICS_COLLECTORS report
    (callables returning metric families, e.g. the compromise fan-out's progress). A backend
    or collector that fails shows as tam_backend_up 0 or is left out; the scrape never fails."""

    def collect(self):
        from django.conf import settings
        from django.utils.module_loading import import_string

        up = GaugeMetricFamily("tam_backend_up", "1 if the backend answered this scrape",
                               labels=["backend"])
        up.add_metric(["database"], 1 if self._database_answers() else 0)
        if _redis_broker_url():
            try:
                yield self._queue_lengths()
                up.add_metric(["broker"], 1)
            except Exception as exc:
                logger.warning("metrics: broker unavailable: %s", exc.__class__.__name__)
                up.add_metric(["broker"], 0)
        for path in settings.METRICS_COLLECTORS:
            try:
                yield from list(import_string(path)())
            except Exception as exc:
                logger.warning("metrics: %s failed: %s", path, exc.__class__.__name__)
        yield up

    @staticmethod
    def _database_answers() -> bool:
        from django.db import connection

        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except Exception as exc:
            logger.warning("metrics: database unavailable: %s", exc.__class__.__name__)
            return False
        return True

    @staticmethod
    def _queue_lengths():
        family = GaugeMetricFamily(
            "tam_celery_queue_length", "Messages waiting in a Celery queue", labels=["queue"]
        )
        client = redis_client(_redis_broker_url(), timeout=1)
        for queue in _celery_queues():
            # kombu's Redis transport keeps priorities 3, 6 and 9 in lists of their own.
            names = [queue, *(f"{queue}\x06\x16{p}" for p in (3, 6, 9))]
            family.add_metric([queue], sum(client.llen(name) for name in names))
        return family


def redis_client(url: str, timeout: float):
    """A Redis client for probes: one attempt, bounded in time (no retries with back-off)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url, socket_connect_timeout=timeout, socket_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


def _redis_broker_url() -> str:
    from django.conf import settings

    url = settings.CELERY_BROKER_URL
    return url if url.startswith(("redis://", "rediss://")) else ""


def _celery_queues() -> list[str]:
    from tam_portal.celery import app

    queues = {app.conf.task_default_queue}
    routes = app.conf.task_routes
    if isinstance(routes, dict):
        queues |= {r["queue"] for r in routes.values() if isinstance(r, dict) and "queue" in r}
    return sorted(queues)


def render(multiprocess_dir: str | None = None) -> bytes:
    """The exposition text: this process's counters (or, in multiprocess mode, every
    process's, merged) followed by the scrape-time gauges."""
    multiprocess_dir = multiprocess_dir or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if multiprocess_dir:
        counted = CollectorRegistry()
        multiprocess.MultiProcessCollector(counted, path=multiprocess_dir)
    else:
        counted = REGISTRY
    scraped = CollectorRegistry()
    scraped.register(ScrapeTimeCollector())
    return generate_latest(counted) + generate_latest(scraped)
