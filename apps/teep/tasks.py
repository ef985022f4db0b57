from celery import shared_task

from apps.teep import services


@shared_task(acks_late=True, ignore_result=True)
def expire_unanswered_requests() -> dict:
    return services.expire_unanswered_requests()


@shared_task(acks_late=True, ignore_result=True)
def cap_unbound_tokens_per_source() -> dict:
    return services.cap_unbound_tokens_per_source()
