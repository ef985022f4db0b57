"""Housekeeping of outstanding TEEP requests (TEEP 7.1: a TAM MUST time out unanswered ones)."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from apps.devices.models import DeliveryItem
from apps.teep.models import TeepToken

# Consumed or expired tokens are kept this long for investigations, then deleted.
TOKEN_RETENTION = timedelta(days=1)


@transaction.atomic
def expire_unanswered_requests(*, now=None) -> dict:
    """Deliveries whose Update was never answered become "expired"; old tokens are deleted.
    Idempotent: running it twice changes nothing the second time."""
    now = now or timezone.now()
    expired = DeliveryItem.objects.filter(
        state=DeliveryItem.State.SENT, token__expires_at__lte=now
    ).update(state=DeliveryItem.State.EXPIRED, settled_at=now, reason="no answer before the token expired")
    cutoff = now - TOKEN_RETENTION
    deleted, _ = TeepToken.objects.filter(expires_at__lte=cutoff).delete()
    return {"deliveries_expired": expired, "tokens_deleted": deleted}
