"""Celery tasks of the policies app: thin, idempotent, take ids (ENGINEERING.md 3.3)."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from apps.policies import services

RETRY = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 2,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 8,
}


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True, **RETRY)
def fan_out_compromise(self, response_id: int, batch_size: int = services.FANOUT_BATCH_SIZE) -> None:
    """One batch of removals, then the task re-enqueues itself for the next (its cursor is
    stored on the CompromiseResponse, so a redelivered or duplicate message is harmless)."""
    while not services.fan_out_compromise_batch(response_id, batch_size=batch_size):
        if not self.request.is_eager:
            # Same queue as this message came from (a test worker listens on its own).
            queue = (self.request.delivery_info or {}).get("routing_key")
            self.apply_async((response_id,), {"batch_size": batch_size}, **({"queue": queue} if queue else {}))
            return
        # Eager (tests, embedded default): loop instead of recursing batch after batch.


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True, **RETRY)
def sweep_queued_actions() -> dict:
    """Beat, every minute: stalled fan-outs resumed. (Unanswered deliveries need no sweep:
    the device's next report settles them, DESIGN.md level-triggered reconciliation.)"""
    stalled = services.stalled_fanouts()
    for response_id in stalled:
        fan_out_compromise.delay(response_id)
    return {"fanouts_resumed": stalled}
