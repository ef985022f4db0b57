"""Outstanding TEEP requests: issuing and consuming tokens and challenges. The only writer of
TeepToken rows.

TEEP 4.2 / 7.1: every QueryRequest and Update the TAM sends carries a fresh token (or, when it
asks for attestation, a challenge); the first validly signed answer consumes it, whatever
happens next; an unknown, expired or already used one is refused. DESIGN.md "Freshness and
sessions"; ENGINEERING.md 3.4 (claim with a conditional UPDATE).
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.db.models import Q

from apps.teep.models import TeepToken

TOKEN_BYTES = 32
# eat_nonce is 8..64 bytes (RFC 9711 4.1), Veraison's nonces too; TEEP allows up to 512.
CHALLENGE_BYTES = 32

Kind = TeepToken.Kind


def new_value(size: int = TOKEN_BYTES) -> bytes:
    return secrets.token_bytes(size)


def reference(value: bytes) -> str:
    """Audit rows name a token by a short prefix, never the whole value."""
    return bytes(value)[:4].hex()


def issue(kind: str, *, numbering: str, now, device=None, data_item_requested: int = 0,
          value: bytes | None = None) -> TeepToken:
    """Store a fresh token (or challenge). Update tokens are bound to their device; past the
    per-device cap the oldest outstanding request of that device is discarded (TEEP 7.1
    allows it)."""
    if device is not None and kind == Kind.UPDATE:
        cap = settings.TEEP_MAX_OUTSTANDING_TOKENS_PER_DEVICE
        outstanding = TeepToken.objects.filter(device=device).outstanding(now).order_by("issued_at")
        excess = outstanding.count() - cap + 1
        if excess > 0:
            stale = list(outstanding.values_list("pk", flat=True)[:excess])
            TeepToken.objects.filter(pk__in=stale).update(expires_at=now)
    return TeepToken.objects.create(
        value=value if value is not None else new_value(CHALLENGE_BYTES if kind == Kind.CHALLENGE else TOKEN_BYTES),
        kind=kind,
        device=device,
        numbering=numbering,
        data_item_requested=data_item_requested,
        expires_at=now + timedelta(seconds=settings.TEEP_TOKEN_LIFETIME_SECONDS),
    )


def claim(value: bytes, *, device, kinds, now) -> TeepToken | None:
    """Consume a token exactly once: one bound to this device, or one not yet bound (the
    QueryRequest of an empty POST), which becomes bound to it. None: unknown, expired, used,
    or issued to another device."""
    candidates = TeepToken.objects.filter(value=value, kind__in=kinds).outstanding(now)
    claimed = candidates.filter(device__isnull=True).update(consumed_at=now, device=device) or candidates.filter(
        device=device
    ).update(consumed_at=now)
    if claimed != 1:
        return None
    return TeepToken.objects.get(value=value)


def claim_challenge(value: bytes, *, device, now) -> TeepToken | None:
    candidates = TeepToken.objects.filter(value=value, kind=Kind.CHALLENGE).outstanding(now)
    if device is not None:
        candidates = candidates.filter(Q(device=device) | Q(device__isnull=True))
    if candidates.update(consumed_at=now) != 1:
        return None
    return TeepToken.objects.get(value=value)


def bind(token: TeepToken, device) -> None:
    """A challenge answered by an agent the TAM did not know yet: bound once it is trusted."""
    if token.device_id is None:
        TeepToken.objects.filter(pk=token.pk, device__isnull=True).update(device=device)


def consumed_stand_in(*, device, numbering: str, data_item_requested: int, now) -> TeepToken:
    """A consumed stand-in for the QueryRequest a Passport-model answer replied to, so that
    the data-items check of TEEP 7.1.1 knows what was asked."""
    return TeepToken.objects.create(
        value=new_value(), kind=Kind.CHALLENGE, device=device, numbering=numbering,
        data_item_requested=data_item_requested, expires_at=now, consumed_at=now,
    )


def close_update_tokens(device, *, issued_before, now) -> int:
    """Update tokens of `device` issued before its current check: the check's report settled
    what they asked, so a late Success or Error for them is refused (DESIGN.md: level-triggered
    reconciliation)."""
    return TeepToken.objects.filter(
        device=device, kind=Kind.UPDATE, issued_at__lt=issued_before
    ).outstanding(now).update(expires_at=now)
