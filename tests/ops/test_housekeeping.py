"""Housekeeping runs on a schedule (Celery beat) and keeps every table the TEEP endpoint
fills bounded: used challenges, expired tokens, and unbound QueryRequest tokens of one source
(an agent in a retry loop gets one per second, each living TEEP_TOKEN_LIFETIME_SECONDS)."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.tam import engine
from apps.teep.models import TeepToken
from apps.teep.wire.numbering import CURRENT

pytestmark = pytest.mark.django_db


def scheduled_tasks() -> dict[str, str]:
    return {name: entry["task"] for name, entry in settings.CELERY_BEAT_SCHEDULE.items()}


def test_every_scheduled_task_exists():
    from tam_portal.celery import app

    app.loader.import_default_modules()
    missing = {name: task for name, task in scheduled_tasks().items() if task not in app.tasks}
    assert not missing


@pytest.mark.parametrize(
    "task",
    [
        "apps.attestation.tasks.purge_used_challenges",
        "apps.tam.tasks.expire_unanswered_requests",
    ],
)
def test_housekeeping_is_scheduled(task):
    assert task in scheduled_tasks().values()


def test_used_challenges_are_purged_after_a_month():
    from apps.attestation.models import UsedChallenge
    from apps.attestation.tasks import purge_used_challenges

    old = UsedChallenge.objects.create(challenge_hash="a" * 64)
    recent = UsedChallenge.objects.create(challenge_hash="b" * 64)
    UsedChallenge.objects.filter(pk=old.pk).update(used_at=timezone.now() - timedelta(days=31))
    assert purge_used_challenges() == 1
    assert list(UsedChallenge.objects.values_list("pk", flat=True)) == [recent.pk]


# --- unbound QueryRequest tokens per source ---------------------------------------------------


def connect_from(source_ip: str, times: int) -> list[bytes]:
    from apps.teep.wire import cose, messages

    tokens = []
    for _ in range(times):
        answer = engine.process_connect(numbering=CURRENT, source_ip=source_ip)
        tokens.append(messages.decode(cose.parse(answer.body).payload).token)
    return tokens


def outstanding(tokens) -> set[bytes]:
    rows = TeepToken.objects.filter(value__in=tokens).outstanding(timezone.now())
    return {bytes(v) for v in rows.values_list("value", flat=True)}


@pytest.fixture
def no_rate_limit(settings):
    settings.TEEP_RATE_LIMIT_PER_SOURCE = "0/60"


@pytest.fixture
def make_agent():
    from apps.devices.services import register_agent
    from apps.teep.wire.keys import TeepKey
    from tests.tam.conftest import SimAgent

    def make():
        key = TeepKey.generate("p256")
        return SimAgent(key=key, device=register_agent(public_key_bytes=key.public_pem(), name="a"))

    return make


def test_an_agent_retrying_empty_posts_leaves_nothing_behind(no_rate_limit, make_agent):
    """Issue 12: an agent that cannot verify the first QueryRequest retries every second;
    each empty POST used to store a 6-hour token. Tokens are minted now: 60 empty POSTs store
    nothing (their audit rows only), and any one of them is still answerable."""
    from apps.audit.models import AuditEvent
    from apps.teep.wire import messages

    looping = connect_from("198.51.100.7", 60)
    assert len(set(looping)) == 60
    assert not TeepToken.objects.exists()
    assert AuditEvent.objects.exchanges().filter(action="teep.connect").count() == 60
    agent = make_agent()
    answer = engine.process_teep_message(
        agent.sign(messages.QueryResponse(token=looping[17], tc_list=())), numbering=CURRENT,
        source_ip="198.51.100.7",
    )
    assert answer.outcome == "nothing-due"
    assert TeepToken.objects.count() == 1  # the one that was used, so it cannot be used again


# --- no audit row under asynchronous commit ----------------------------------------------------


def test_the_empty_post_commits_its_audit_row_synchronously(no_rate_limit):
    """The exchange's audit row is written in the same transaction as its token: that
    transaction must not relax durability (synchronous_commit = off)."""
    with CaptureQueriesContext(connection) as queries:
        connect_from("198.51.100.7", 1)
    statements = " ".join(q["sql"].lower() for q in queries.captured_queries)
    assert "audit_auditevent" in statements
    assert "synchronous_commit" not in statements
