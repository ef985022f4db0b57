"""Outstanding TEEP requests: issuing and consuming tokens and challenges. The only writer of
TeepToken rows.

TEEP 4.2 / 7.1: every QueryRequest and Update the TAM sends carries a fresh token (or, when it
asks for attestation, a challenge); the first validly signed answer consumes it, whatever
happens next; an unknown, expired or already used one is refused. DESIGN.md "Freshness and
sessions".

Tokens are **minted**, not stored (issue 11: the empty POST writes nothing but its audit row).
A token is 40 bytes the TAM alone can make:

    random (12) | kind (1) | data-item-requested (1) | issued at, ms (6) | device id (8) | MAC (12)

The MAC is HMAC-SHA-256 over the rest, keyed from SECRET_KEY; a QueryRequest token names no
device (an empty POST says nobody), an Update token names the device it was issued to. What
is stored is only the *use* of a token: consuming one inserts its row (consumed), and the
unique value makes a second use fail (INSERT ... ON CONFLICT DO NOTHING: one statement, no
race). Rows are deleted once the token would have expired anyway (apps/tam/housekeeping.py).

Attestation challenges are still stored when issued (they are rare, and a Verifier needs the
exact nonce).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Q

from apps.teep.models import TeepToken

TOKEN_BYTES = 40
# eat_nonce is 8..64 bytes (RFC 9711 4.1), Veraison's nonces too; TEEP allows up to 512.
CHALLENGE_BYTES = 32

Kind = TeepToken.Kind

_KIND_CODES = {Kind.QUERY_REQUEST: 0x51, Kind.UPDATE: 0x55}
_KINDS_BY_CODE = {code: kind for kind, code in _KIND_CODES.items()}
_RANDOM, _MAC = 12, 12
_BODY = _RANDOM + 1 + 1 + 6 + 8
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Token:
    """A token that was consumed (or a challenge): what the TAM asked with it."""

    value: bytes
    kind: str
    issued_at: datetime
    device_id: int | None
    data_item_requested: int = 0
    expires_at: datetime | None = None


def new_value(size: int = CHALLENGE_BYTES) -> bytes:
    return secrets.token_bytes(size)


def reference(value: bytes) -> str:
    """Audit rows name a token by a short prefix (its random part), never the whole value."""
    return bytes(value)[:4].hex()


def lifetime() -> timedelta:
    return timedelta(seconds=settings.TEEP_TOKEN_LIFETIME_SECONDS)


_mac_key_cache: tuple[str, bytes] | None = None


def _mac_key() -> bytes:
    global _mac_key_cache
    secret = settings.SECRET_KEY
    if _mac_key_cache is None or _mac_key_cache[0] != secret:
        _mac_key_cache = (secret, hashlib.sha256(b"tam-portal TEEP token v1\x00" + secret.encode()).digest())
    return _mac_key_cache[1]


def mint(kind: str, *, now, device_id: int | None = None, data_item_requested: int = 0) -> bytes:
    """A fresh token of `kind` (QueryRequest or Update), nothing written."""
    # Rounded up to the millisecond: a token is never older than the moment it was minted
    # (the staleness check compares it with times kept to the microsecond).
    micros = (now - _EPOCH) // timedelta(microseconds=1)
    issued_ms = -(-micros // 1000)
    body = (
        secrets.token_bytes(_RANDOM)
        + bytes((_KIND_CODES[kind], data_item_requested & 0xFF))
        + issued_ms.to_bytes(6, "big")
        + (device_id or 0).to_bytes(8, "big")
    )
    return body + hmac.new(_mac_key(), body, hashlib.sha256).digest()[:_MAC]


def open_token(value: bytes) -> Token | None:
    """The facts a minted token carries, when the TAM made it (None otherwise). Says nothing
    of whether it expired or was used."""
    value = bytes(value)
    if len(value) != TOKEN_BYTES:
        return None
    body, mac = value[:_BODY], value[_BODY:]
    if not hmac.compare_digest(mac, hmac.new(_mac_key(), body, hashlib.sha256).digest()[:_MAC]):
        return None
    kind = _KINDS_BY_CODE.get(body[_RANDOM])
    if kind is None:
        return None
    issued_at = datetime.fromtimestamp(int.from_bytes(body[_RANDOM + 2:_RANDOM + 8], "big") / 1000, tz=UTC)
    device_id = int.from_bytes(body[_RANDOM + 8:], "big") or None
    return Token(value, kind, issued_at, device_id, body[_RANDOM + 1], issued_at + lifetime())


def peek_device_id(value: bytes) -> int | None:
    """The device an Update token was issued to (for agents that send no kid: their Success
    and Error name their device by the token). None for anything else."""
    token = open_token(value)
    return token.device_id if token is not None and token.kind == Kind.UPDATE else None


def claim(value: bytes, *, device, kinds, now, numbering: str = "") -> Token | None:
    """Consume a token exactly once: one issued to this device, or a QueryRequest token (an
    empty POST's, bound to nobody). None: not the TAM's, of another kind, expired, used, or
    issued to another device. One statement."""
    token = open_token(value)
    if token is None or token.kind not in kinds:
        return None
    if token.issued_at > now + timedelta(seconds=60) or token.expires_at <= now:
        return None
    device_id = getattr(device, "pk", device)
    if token.device_id is not None and token.device_id != device_id:
        return None
    if not _insert_consumed(token, device_id=device_id, numbering=numbering, now=now):
        return None
    return token


def _insert_consumed(token: Token, *, device_id, numbering: str, now) -> bool:
    table = TeepToken._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (value, kind, device_id, numbering, data_item_requested, issued_at, expires_at,"
            " consumed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (value) DO NOTHING RETURNING id",
            [token.value, token.kind, device_id, numbering, token.data_item_requested,
             _db_datetime(token.issued_at), _db_datetime(token.expires_at), _db_datetime(now)],
        )
        return cursor.fetchone() is not None


def _db_datetime(value: datetime):
    return connection.ops.adapt_datetimefield_value(value)


def close(values, *, device_id: int, now) -> None:
    """Update tokens whose deliveries a report settled: a late Success or Error for them is
    refused like a used one (DESIGN.md: level-triggered reconciliation). One statement."""
    opened = [t for t in (open_token(v) for v in set(values)) if t is not None and t.expires_at > now]
    if not opened:
        return
    table = TeepToken._meta.db_table
    rows = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * len(opened))
    params = []
    for token in opened:
        params += [token.value, token.kind, device_id, "", token.data_item_requested,
                   _db_datetime(token.issued_at), _db_datetime(token.expires_at), _db_datetime(now)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (value, kind, device_id, numbering, data_item_requested, issued_at, expires_at,"
            f" consumed_at) VALUES {rows} ON CONFLICT (value) DO NOTHING",
            params,
        )


# --- Attestation challenges (stored) ----------------------------------------------------------


def issue_challenge(*, numbering: str, now, device=None, data_item_requested: int = 0,
                    value: bytes | None = None) -> TeepToken:
    return TeepToken.objects.create(
        value=value if value is not None else new_value(CHALLENGE_BYTES),
        kind=Kind.CHALLENGE,
        device=device,
        numbering=numbering,
        data_item_requested=data_item_requested,
        expires_at=now + lifetime(),
    )


def _as_token(row: TeepToken) -> Token:
    return Token(bytes(row.value), row.kind, row.issued_at, row.device_id, row.data_item_requested,
                 row.expires_at)


def claim_challenge(value: bytes, *, device, now) -> Token | None:
    candidates = TeepToken.objects.filter(value=value, kind=Kind.CHALLENGE).outstanding(now)
    if device is not None:
        candidates = candidates.filter(Q(device=device) | Q(device__isnull=True))
    if candidates.update(consumed_at=now) != 1:
        return None
    return _as_token(TeepToken.objects.get(value=value))


def bind(token: Token, device) -> None:
    """A challenge answered by an agent the TAM did not know yet: bound once it is trusted."""
    if token.device_id is None:
        TeepToken.objects.filter(value=token.value, device__isnull=True).update(device=device)


def consumed_stand_in(*, data_item_requested: int, now) -> Token:
    """What a Passport-model answer replied to (no challenge was issued), so that the
    data-items check of TEEP 7.1.1 knows what was asked. Nothing stored."""
    return Token(new_value(), Kind.CHALLENGE, now, None, data_item_requested, now)
