"""Unanswered requests time out (TEEP 7.1): deliveries expire, old tokens go."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.devices.models import DeliveryItem
from apps.tam.housekeeping import TOKEN_RETENTION, expire_unanswered_requests
from apps.teep.models import TeepToken

pytestmark = pytest.mark.django_db


def test_unanswered_update_expires_and_old_tokens_are_deleted(make_agent):
    agent = make_agent()
    now = timezone.now()
    ancient = TeepToken.objects.create(value=b"a" * 16, kind="query-request", numbering="draft-26",
                                       expires_at=now - TOKEN_RETENTION - timedelta(minutes=1), consumed_at=now)
    recent = TeepToken.objects.create(value=b"r" * 16, kind="query-request", numbering="draft-26",
                                      expires_at=now - timedelta(minutes=1), consumed_at=now)
    waiting = DeliveryItem.objects.create(device=agent.device, update_token=b"s" * 40,
                                          expires_at=now - timedelta(seconds=1), kind="install", component_key="81")
    pending = DeliveryItem.objects.create(device=agent.device, update_token=b"f" * 40,
                                          expires_at=now + timedelta(hours=1), kind="install", component_key="82")

    assert expire_unanswered_requests(now=now) == {"deliveries_expired": 1, "tokens_deleted": 1}
    waiting.refresh_from_db()
    pending.refresh_from_db()
    assert waiting.state == "expired" and pending.state == "sent"
    assert not TeepToken.objects.filter(pk=ancient.pk).exists()
    assert TeepToken.objects.filter(pk=recent.pk).exists()  # kept while a replay could still come
    # Idempotent.
    assert expire_unanswered_requests(now=now) == {"deliveries_expired": 0, "tokens_deleted": 0}
