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
        "apps.tam.tasks.cap_unbound_tokens_per_source",
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


def test_a_token_remembers_the_source_that_asked_for_it(no_rate_limit):
    (token,) = connect_from("198.51.100.7", 1)
    assert TeepToken.objects.get(value=token).source_ip == "198.51.100.7"


def test_unbound_tokens_past_the_cap_are_expired_oldest_first(no_rate_limit, settings):
    from apps.tam.tasks import cap_unbound_tokens_per_source

    settings.TEEP_MAX_UNBOUND_TOKENS_PER_SOURCE = 3
    looping = connect_from("198.51.100.7", 5)
    calm = connect_from("203.0.113.9", 2)
    assert cap_unbound_tokens_per_source() == {"tokens_expired": 2, "sources": 1}
    assert outstanding(looping) == set(looping[-3:])
    assert outstanding(calm) == set(calm)
    assert cap_unbound_tokens_per_source() == {"tokens_expired": 0, "sources": 0}


def test_the_cap_leaves_tokens_bound_to_devices_alone(no_rate_limit, settings, make_agent):
    from apps.tam.tasks import cap_unbound_tokens_per_source

    settings.TEEP_MAX_UNBOUND_TOKENS_PER_SOURCE = 1
    agent = make_agent()
    tokens = connect_from("198.51.100.7", 3)
    TeepToken.objects.filter(value=tokens[0]).update(device=agent.device)
    assert cap_unbound_tokens_per_source()["tokens_expired"] == 1
    assert outstanding(tokens) == {tokens[0], tokens[2]}


def test_a_capped_token_is_dropped_like_any_expired_one(no_rate_limit, settings, make_agent):
    from apps.tam.tasks import cap_unbound_tokens_per_source
    from apps.teep.wire import messages

    settings.TEEP_MAX_UNBOUND_TOKENS_PER_SOURCE = 1
    agent = make_agent()
    first, _ = connect_from("198.51.100.7", 2)
    cap_unbound_tokens_per_source()
    answer = engine.process_teep_message(
        agent.sign(messages.QueryResponse(token=first, tc_list=())), numbering=CURRENT,
        source_ip="198.51.100.7",
    )
    assert answer.dropped and "expired" in answer.reason


def test_zero_disables_the_cap(no_rate_limit, settings):
    from apps.tam.tasks import cap_unbound_tokens_per_source

    settings.TEEP_MAX_UNBOUND_TOKENS_PER_SOURCE = 0
    tokens = connect_from("198.51.100.7", 3)
    assert cap_unbound_tokens_per_source()["tokens_expired"] == 0
    assert outstanding(tokens) == set(tokens)


# --- no audit row under asynchronous commit ----------------------------------------------------


def test_the_empty_post_commits_its_audit_row_synchronously(no_rate_limit):
    """The exchange's audit row is written in the same transaction as its token: that
    transaction must not relax durability (synchronous_commit = off)."""
    with CaptureQueriesContext(connection) as queries:
        connect_from("198.51.100.7", 1)
    statements = " ".join(q["sql"].lower() for q in queries.captured_queries)
    assert "audit_auditevent" in statements
    assert "synchronous_commit" not in statements
