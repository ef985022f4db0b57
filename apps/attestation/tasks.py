"""Celery tasks of the attestation app: thin, idempotent, retried on an unreachable Verifier
(ENGINEERING.md 3.3). Routed to the "verifier" queue by CELERY_TASK_ROUTES."""

from celery import shared_task

from apps.attestation import services
from apps.attestation.appraisal import VerifierUnavailable

MAX_RETRIES = 8


@shared_task(
    bind=True,
    acks_late=True,
    ignore_result=True,
    autoretry_for=(VerifierUnavailable,),
    retry_backoff=2,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=MAX_RETRIES,
)
def verify_evidence(self, attestation_request_id: int) -> str:
    """Appraise one AttestationRequest and store the outcome; a done request is left alone.

    A negative appraisal is a result, never retried; VerifierUnavailable is retried with
    backoff, and after the last retry the request is marked unavailable (nothing trusted).
    """
    try:
        appraisal = services.process_attestation_request(attestation_request_id)
    except VerifierUnavailable as exc:
        if self.request.retries >= self.max_retries:
            services.mark_request_unavailable(attestation_request_id, str(exc))
        else:
            services.note_request_error(attestation_request_id, str(exc))
        raise
    return appraisal.status if appraisal else "already-done"


@shared_task(acks_late=True, ignore_result=True)
def purge_used_challenges(days: int = 30) -> int:
    """Forget challenges older than any token lifetime; they can no longer be replayed anyway."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.attestation.models import UsedChallenge

    deleted, _ = UsedChallenge.objects.filter(
        used_at__lt=timezone.now() - timedelta(days=days)
    ).delete()
    return deleted
