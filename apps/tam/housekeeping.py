"""Housekeeping of outstanding TEEP requests (TEEP 7.1: a TAM MUST time out unanswered ones)."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from apps.devices.models import DeliveryItem
from apps.personalization import services as personalization
from apps.teep.models import TeepToken

# Consumed or expired tokens are kept this long for investigations, then deleted.
TOKEN_RETENTION = timedelta(days=1)


# Deliveries expired per transaction: a backlog (after an outage) never holds locks for long
# nor exceeds what one statement may carry.
EXPIRY_BATCH = 5000


def expire_unanswered_requests(*, now=None, batch_size: int = EXPIRY_BATCH) -> dict:
    """Deliveries whose Update was never answered become "expired"; the rows of used tokens
    and challenges are deleted a day after they expired (a minted token past its expiry is
    refused without a row).
    A delivery whose device is answering right now (row locked) is left for the next run.
    Idempotent: running it twice changes nothing the second time."""
    now = now or timezone.now()
    expired = 0
    while True:
        with transaction.atomic():
            batch = list(
                DeliveryItem.objects.filter(state=DeliveryItem.State.SENT, expires_at__lte=now)
                .order_by("pk").select_for_update(skip_locked=True).values_list("pk", flat=True)[:batch_size]
            )
            expired += DeliveryItem.objects.filter(pk__in=batch).update(
                state=DeliveryItem.State.EXPIRED, settled_at=now, reason="no answer before the token expired"
            )
            # Personalization data they carried waits for the next contact again.
            personalization.requeue_delivery_items(batch, "the Update carrying it went unanswered")
        if len(batch) < batch_size:
            break
    cutoff = now - TOKEN_RETENTION
    deleted, _ = TeepToken.objects.filter(expires_at__lte=cutoff).delete()
    return {"deliveries_expired": expired, "tokens_deleted": deleted}
