from celery import shared_task

from apps.tam import housekeeping


@shared_task(acks_late=True, ignore_result=True)
def expire_unanswered_requests() -> dict:
    return housekeeping.expire_unanswered_requests()

