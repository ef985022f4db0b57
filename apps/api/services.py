"""Creating and revoking API tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from apps.api.models import ApiToken
from apps.audit.services import record_operator_action

TOKEN_PREFIX = "tam_"
LAST_USED_RESOLUTION = timedelta(minutes=5)


def token_digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@transaction.atomic(durable=True)
def create_token(
    user, *, name: str = "", expires_at=None, acting_user=None, request=None
) -> tuple[ApiToken, str]:
    """(the stored row, the token itself: shown once and never stored)."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, prefix=raw[:12], digest=token_digest(raw), expires_at=expires_at
    )
    record_operator_action(
        actor=acting_user,
        action="api-token.create",
        obj=token,
        after={"user": user.get_username(), "name": name, "prefix": token.prefix},
        request=request,
    )
    return token, raw


@transaction.atomic  # not durable: the admin's delete view runs inside its own transaction
def revoke_token(token: ApiToken, *, acting_user, request=None) -> None:
    record_operator_action(
        actor=acting_user,
        action="api-token.revoke",
        obj=token,
        before={"user": token.user.get_username(), "prefix": token.prefix},
        request=request,
    )
    token.delete()


def authenticate_token(raw: str) -> ApiToken | None:
    """The live token row for `raw`, or None (unknown, expired, or its user inactive)."""
    now = timezone.now()
    token = ApiToken.objects.select_related("user").filter(digest=token_digest(raw)).first()
    if token is None or not token.user.is_active or (token.expires_at and token.expires_at <= now):
        return None
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        # Conditional, coarse-grained: not one write per request.
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token
