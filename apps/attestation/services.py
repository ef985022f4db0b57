"""Remote attestation services: appraising Evidence, checking Attestation Results, recording
outcomes, and registering the endorsements and reference values the built-in Verifier uses.

The TAM flow (DESIGN.md "Attestation bootstrap"):
- Evidence (Background Check model): `request_appraisal_and_wait()` stores an
  AttestationRequest (claiming the challenge), runs `tasks.verify_evidence` and waits up to
  ATTESTATION_REQUEST_DEADLINE_SECONDS. Appraisal -> go on; None -> 503 Retry-After (the task
  finishes in the background and trusts the key); VerifierUnavailable -> 503, nothing stored.
  `appraise()` is the same without the task (synchronous; nothing stored).
- Attestation Result (Passport model, TEEP 7.1.1.1): `check_attestation_result()`.
- `is_attestation_fresh()`: the key's latest appraisal affirms and is within the validity.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import cbor2
from celery.exceptions import Retry
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.attestation.appraisal import Appraisal, VerifierProtocolError, VerifierUnavailable
from apps.attestation.conf import setting
from apps.attestation.models import (
    AttestationKey,
    AttestationRecord,
    AttestationRequest,
    ReferenceValue,
    UsedChallenge,
)
from apps.audit.services import record_operator_action, record_system_event
from apps.devices.models import Device
from apps.ops import metrics
from apps.teep.wire import eat
from apps.teep.wire.eat import AttestationError
from apps.teep.wire.keys import TeepKey, load_public_key
from apps.teep.wire.suit.encryption import decrypt_cose_encrypt

log = logging.getLogger(__name__)

__all__ = [
    "Appraisal",
    "VerifierUnavailable",
    "VerifierProtocolError",
    "AttestationServiceError",
    "appraise",
    "request_appraisal_and_wait",
    "check_attestation_result",
    "record_appraisal",
    "is_attestation_fresh",
    "latest_record",
    "get_verifier",
    "decrypt_evidence",
    "register_attestation_key",
    "set_attestation_key_active",
    "create_reference_value",
    "import_reference_values",
    "import_attestation_keys",
    "fleet_summary",
]

EAT_ENCRYPTION_CONTEXT = b"EAT Encryption"  # TEEP 8.2
_POLL_INTERVALS = (0.02, 0.05, 0.1, 0.2)


class AttestationServiceError(Exception):
    """An operator request (registration, import) that cannot be done; the message says why."""


def challenge_hash(challenge: bytes) -> str:
    return hashlib.sha256(challenge).hexdigest()


# --- Verifier choice ---------------------------------------------------------------------------


def get_verifier():
    """The Verifier named by ATTESTATION_BACKEND: "builtin" (default) or "veraison"."""
    backend = setting("ATTESTATION_BACKEND")
    if backend == "builtin":
        from apps.attestation.verifiers.builtin import BuiltinVerifier

        return BuiltinVerifier()
    if backend == "veraison":
        from apps.attestation.verifiers.veraison import VeraisonVerifier

        return VeraisonVerifier.from_settings()
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        f"ATTESTATION_BACKEND must be 'builtin' or 'veraison', not {backend!r}"
    )


def decrypt_evidence(payload: bytes) -> bytes:
    """TEEP 8.2: an attestation payload encrypted to the TAM (COSE_Encrypt, "EAT Encryption").

    Decrypted with the TAM's P-256 keys (every configured one, for rotation); a payload that
    is not a COSE_Encrypt is returned unchanged. AttestationError if no TAM key opens it.
    """
    if not eat.is_cose_encrypt(payload):
        return payload
    from apps.teep.tam_keys import tam_keys

    candidates = [k for k in tam_keys().keys if k.kind == "p256"]
    for key in candidates:
        try:
            return decrypt_cose_encrypt(payload, key, context_other=EAT_ENCRYPTION_CONTEXT)
        except ValueError:
            continue
    raise AttestationError("the encrypted attestation payload does not decrypt with any TAM key")


def _failed(
    reason: str,
    *,
    backend: str,
    agent_key: TeepKey,
    challenge: bytes | None = None,
    status: str = "contraindicated",
    model: str = "evidence",
) -> Appraisal:
    return Appraisal(
        status=status,
        backend=backend,
        reasons=[reason],
        trust_vector={"instance-identity": 99} if status == "contraindicated" else {},
        agent_kid=agent_key.kid.hex(),
        model=model,
        challenge_hash=challenge_hash(challenge) if challenge is not None else "",
    )


def _claim_challenge(challenge: bytes, agent_kid: str) -> bool:
    """Single use (TEEP 9): False if the challenge was already used."""
    try:
        with transaction.atomic():
            UsedChallenge.objects.create(
                challenge_hash=challenge_hash(challenge), agent_kid=agent_kid
            )
    except IntegrityError:
        return False
    return True


def _run_verifier(
    verifier,
    *,
    evidence: bytes,
    media_type: str,
    challenge: bytes,
    agent_key: TeepKey,
    challenge_expires_at: datetime | None,
) -> Appraisal:
    """Decrypt, appraise; a protocol failure of the Verifier becomes an "error" appraisal."""
    try:
        evidence = decrypt_evidence(evidence)
    except AttestationError as exc:
        return _failed(str(exc), backend=verifier.name, agent_key=agent_key, challenge=challenge)
    try:
        with metrics.time_verifier(verifier.name, unavailable=VerifierUnavailable):
            return verifier.appraise(
                evidence=evidence,
                media_type=media_type,
                challenge=challenge,
                agent_key=agent_key,
                challenge_expires_at=challenge_expires_at,
            )
    except VerifierProtocolError as exc:
        log.error("attestation verifier protocol error: %s", exc)
        return _failed(
            str(exc),
            backend=verifier.name,
            agent_key=agent_key,
            challenge=challenge,
            status="error",
        )


# --- Background Check model --------------------------------------------------------------------


def appraise(
    *,
    evidence: bytes,
    media_type: str,
    challenge: bytes,
    agent_key: TeepKey,
    challenge_expires_at: datetime | None = None,
) -> Appraisal:
    """Appraise Evidence now, with the configured Verifier; nothing is stored.

    Claims the challenge (a second use is contraindicated as a replay). Raises
    VerifierUnavailable when the Verifier cannot be reached (the challenge stays used: the
    agent starts again and gets a new one). Call outside any transaction (slow I/O).
    """
    if not _claim_challenge(challenge, agent_key.kid.hex()):
        return _failed(
            "the challenge was already used (replay)",
            backend=setting("ATTESTATION_BACKEND"),
            agent_key=agent_key,
            challenge=challenge,
        )
    return _run_verifier(
        get_verifier(),
        evidence=evidence,
        media_type=media_type,
        challenge=challenge,
        agent_key=agent_key,
        challenge_expires_at=challenge_expires_at,
    )


def request_appraisal_and_wait(
    *,
    evidence: bytes,
    media_type: str,
    challenge: bytes,
    agent_key: TeepKey,
    device: Device | None = None,
    challenge_expires_at: datetime | None = None,
    deadline_seconds: float | None = None,
) -> Appraisal | None:
    """Queue the appraisal (Celery `verify_evidence`) and wait for it up to the deadline.

    Returns the stored Appraisal (with record_id), or None when it is not in yet: answer 503
    with Retry-After; the task stores the result and, if affirming, trusts the key, so the
    agent's next attempt finds it (`is_attestation_fresh`). Raises VerifierUnavailable when
    the Verifier was unreachable and the task gave up (503, nothing stored).

    The same Evidence for the same challenge from the same key is the same request (a retry:
    its outcome is returned); a different payload for a used challenge is a replay. Must be
    called outside any transaction: the request row has to be committed for a worker to see it.
    """
    from apps.attestation.tasks import verify_evidence

    deadline = (
        setting("ATTESTATION_REQUEST_DEADLINE_SECONDS")
        if deadline_seconds is None
        else deadline_seconds
    )
    kid = agent_key.kid.hex()
    digest = hashlib.sha256(evidence).hexdigest()
    chash = challenge_hash(challenge)
    existing = AttestationRequest.objects.filter(challenge_hash=chash).first()
    if existing is None:
        try:
            with transaction.atomic():
                UsedChallenge.objects.create(challenge_hash=chash, agent_kid=kid)
                existing = AttestationRequest.objects.create(
                    device=device,
                    agent_kid=kid,
                    agent_public_key=cbor2.dumps(agent_key.public().to_cose_key(), canonical=True),
                    evidence=evidence,
                    evidence_digest=digest,
                    media_type=media_type[:300],
                    challenge=challenge,
                    challenge_hash=chash,
                    challenge_expires_at=challenge_expires_at,
                    backend=setting("ATTESTATION_BACKEND"),
                )
        except IntegrityError:
            existing = AttestationRequest.objects.filter(challenge_hash=chash).first()
            if existing is None:  # used by appraise() or a Passport check: a replay
                return _replay(device or kid, agent_key, challenge)
        else:
            try:
                verify_evidence.delay(existing.pk)
            except Retry as exc:
                # Eager mode (no broker) propagates the retry instead of scheduling it: no worker
                # will try again, so this request is over.
                mark_request_unavailable(existing.pk, str(exc.exc or exc))
                raise VerifierUnavailable(str(exc.exc or exc)) from None
    if existing.agent_kid != kid or existing.evidence_digest != digest:
        return _replay(device or kid, agent_key, challenge)
    return wait_for_appraisal(existing.pk, deadline)


def wait_for_appraisal(request_id: int, deadline_seconds: float) -> Appraisal | None:
    """The stored outcome of an AttestationRequest, waiting up to `deadline_seconds` for it."""
    give_up = time.monotonic() + max(0.0, deadline_seconds)
    attempt = 0
    while True:
        request = AttestationRequest.objects.filter(pk=request_id).only("state").first()
        if request is None:
            return None
        if request.state == AttestationRequest.State.DONE:
            record = AttestationRecord.objects.filter(request_id=request_id).first()
            return appraisal_from_record(record) if record else None
        if request.state == AttestationRequest.State.UNAVAILABLE:
            raise VerifierUnavailable("the Verifier could not be reached; nothing was appraised")
        if time.monotonic() >= give_up:
            return None
        time.sleep(
            min(
                _POLL_INTERVALS[min(attempt, len(_POLL_INTERVALS) - 1)],
                max(0.0, give_up - time.monotonic()),
            )
        )
        attempt += 1


def _replay(device_or_kid, agent_key: TeepKey, challenge: bytes) -> Appraisal:
    appraisal = _failed(
        "the challenge was already used (replay)",
        backend=setting("ATTESTATION_BACKEND"),
        agent_key=agent_key,
        challenge=challenge,
    )
    return record_appraisal(device_or_kid, appraisal, update_device=False)


def process_attestation_request(request_id: int) -> Appraisal | None:
    """The body of `tasks.verify_evidence`: appraise a pending request once, store the outcome.

    Idempotent: a request that is no longer pending is left alone (returns None). The Verifier
    runs outside any transaction; the outcome is stored with a conditional update, so two
    workers never both record it. VerifierUnavailable propagates for the task to retry.
    """
    request = AttestationRequest.objects.filter(
        pk=request_id, state=AttestationRequest.State.PENDING
    ).first()
    if request is None:
        return None
    AttestationRequest.objects.filter(pk=request_id).update(attempts=request.attempts + 1)
    agent_key = TeepKey.from_cose_key(bytes(request.agent_public_key))
    appraisal = _run_verifier(
        get_verifier(),
        evidence=bytes(request.evidence),
        media_type=request.media_type,
        challenge=bytes(request.challenge),
        agent_key=agent_key,
        challenge_expires_at=request.challenge_expires_at,
    )
    with transaction.atomic(durable=True):
        claimed = AttestationRequest.objects.filter(
            pk=request_id, state=AttestationRequest.State.PENDING
        ).update(state=AttestationRequest.State.DONE, finished_at=timezone.now(), last_error="")
        if claimed != 1:
            return None
        device_or_kid = request.device or request.agent_kid
        return _record(
            device_or_kid, appraisal, request=request, agent_key=agent_key, update_device=True
        )


def mark_request_unavailable(request_id: int, reason: str) -> None:
    """The task gave up on an unreachable Verifier: nothing appraised, nothing trusted."""
    with transaction.atomic():
        updated = AttestationRequest.objects.filter(
            pk=request_id, state=AttestationRequest.State.PENDING
        ).update(
            state=AttestationRequest.State.UNAVAILABLE,
            finished_at=timezone.now(),
            last_error=reason[:500],
        )
        if updated:
            record_system_event(
                action="attestation.verifier-unavailable",
                outcome="error",
                reason=reason[:500],
                detail={"attestation_request": request_id},
            )


def note_request_error(request_id: int, reason: str) -> None:
    AttestationRequest.objects.filter(pk=request_id).update(last_error=reason[:500])


# --- Passport model -------------------------------------------------------------------------------


def trusted_verifier_keys() -> list[TeepKey]:
    """Keys whose Attestation Results we accept: active Verifier keys, the pinned Veraison key."""
    keys = [
        row.teep_key()
        for row in AttestationKey.objects.filter(
            active=True, purpose=AttestationKey.Purpose.VERIFIER
        )
    ]
    key_file = setting("VERAISON_EAR_PUBLIC_KEY_FILE")
    if key_file:
        from apps.attestation.verifiers.veraison import load_pinned_key

        try:
            keys.append(load_pinned_key(key_file))
        except (OSError, ValueError) as exc:
            log.error("VERAISON_EAR_PUBLIC_KEY_FILE cannot be read: %s", exc)
    return keys


def check_attestation_result(
    *,
    payload: bytes,
    agent_key: TeepKey,
    expected_nonce: bytes | None = None,
    now: float | None = None,
) -> Appraisal:
    """TEEP 7.1.1.1 for an Attestation Result in a QueryResponse (Passport model); nothing stored.

    Signed by a trusted Verifier, fresh (iat/exp window, and `expected_nonce` = the
    QueryRequest token when given, TEEP 9; the nonce is then single use), and its cnf is the
    RFC 9679 thumbprint of `agent_key`. A failure is a contraindicated Appraisal with the reason.
    """
    backend = "passport"
    if expected_nonce is not None and not _claim_challenge(expected_nonce, agent_key.kid.hex()):
        return _failed(
            "the nonce was already used (replay)",
            backend=backend,
            agent_key=agent_key,
            challenge=expected_nonce,
            model="attestation-result",
        )
    try:
        payload = decrypt_evidence(payload)
        result = eat.validate_attestation_result(
            payload,
            verifier_keys=trusted_verifier_keys(),
            agent_key=agent_key,
            now=now,
            max_age_seconds=int(setting("ATTESTATION_RESULT_MAX_AGE_SECONDS")),
            expected_nonce=expected_nonce,
        )
    except AttestationError as exc:
        return _failed(
            str(exc),
            backend=backend,
            agent_key=agent_key,
            challenge=expected_nonce,
            model="attestation-result",
        )
    claims = {
        name: (value.hex() if isinstance(value, bytes) else value)
        for name, value in result.teep_claims.items()
        if name != "manifests"
    }
    return Appraisal(
        status=result.status,
        backend=backend,
        model="attestation-result",
        reasons=[f"Attestation Result from a trusted Verifier: {result.status}"],
        trust_vector=result.trust_vector,
        claims=_jsonable(claims),
        agent_kid=agent_key.kid.hex(),
        raw_result=payload,
        challenge_hash=challenge_hash(expected_nonce) if expected_nonce else "",
        result=result,
    )


# --- Recording and freshness ----------------------------------------------------------------


def record_appraisal(
    device_or_kid,
    appraisal: Appraisal,
    *,
    agent_key: TeepKey | None = None,
    update_device: bool = True,
) -> Appraisal:
    """Store the appraisal (AttestationRecord + audit row); returns it with record_id set.

    With `update_device`: affirming -> the agent key becomes a trusted device (created if
    unknown, registration "attested", state active; `agent_key` is needed to create it);
    anything else -> an existing device is marked untrusted. Runs in its own transaction, or
    in the caller's.
    """
    with transaction.atomic():
        return _record(
            device_or_kid, appraisal, request=None, agent_key=agent_key, update_device=update_device
        )


def _record(device_or_kid, appraisal: Appraisal, *, request, agent_key, update_device) -> Appraisal:
    device = device_or_kid if isinstance(device_or_kid, Device) else None
    kid = device.kid if device else str(device_or_kid or appraisal.agent_kid)
    if device is None:
        device = Device.objects.filter(kid=kid).first()
    if update_device:
        device = _apply_to_device(device, kid, appraisal, agent_key)
    record = AttestationRecord.objects.create(
        device=device,
        agent_kid=kid,
        request=request,
        backend=appraisal.backend,
        model=appraisal.model,
        status=appraisal.status,
        claims=_jsonable(appraisal.claims),
        reasons=list(appraisal.reasons),
        trust_vector=dict(appraisal.trust_vector),
        challenge_hash=appraisal.challenge_hash,
        raw_result=appraisal.raw_result or b"",
    )
    record_system_event(
        action="attestation.appraised",
        outcome="ok" if appraisal.affirming else "rejected",
        reason=appraisal.reason[:500],
        obj=record,
        detail={"agent_kid": kid, "status": appraisal.status, "backend": appraisal.backend},
    )
    appraisal.record_id = record.pk
    return appraisal


def _apply_to_device(
    device: Device | None, kid: str, appraisal: Appraisal, agent_key: TeepKey | None
):
    """Affirming: the key becomes (or stays) a trusted device with its attested attributes;
    otherwise an existing device is flagged untrusted. Device rows are written by
    apps.devices.services only."""
    from apps.devices import services as device_services

    if appraisal.affirming:
        # Attested attributes feed the policy groups' attribute rules (apps.policies).
        attested = {
            name: str(appraisal.claims[name])
            for name in ("oemid", "hwmodel", "hwversion")
            if appraisal.claims.get(name) not in (None, "")
        }
        ueid = appraisal.claims.get("ueid")
        return device_services.trust_attested_device(
            device, kid=kid, agent_key=agent_key, ueid=ueid if isinstance(ueid, str) else "",
            attributes=attested,
        )
    if device is not None and appraisal.status != "error":
        return device_services.mark_untrusted(device)
    return device


def latest_record(device_or_kid) -> AttestationRecord | None:
    """The key's latest appraisal (Verifier errors, which appraise nothing, are skipped)."""
    kid = device_or_kid.kid if isinstance(device_or_kid, Device) else str(device_or_kid)
    return (
        AttestationRecord.objects.for_kid(kid)
        .exclude(status=AttestationRecord.Status.ERROR)
        .order_by("-created_at", "-id")
        .first()
    )


def is_attestation_fresh(device_or_kid, now: datetime | None = None) -> bool:
    """True when the key's latest appraisal affirms and is younger than
    ATTESTATION_VALIDITY_SECONDS."""
    record = latest_record(device_or_kid)
    if record is None:
        return False
    return is_fresh_appraisal(record.status, record.created_at, now)


def is_fresh_appraisal(status: str | None, appraised_at: datetime | None, now: datetime | None = None) -> bool:
    """The rule of is_attestation_fresh() for an appraisal already read (the TAM reads the
    latest one with the device, apps/devices/snapshot.py)."""
    if status != AttestationRecord.Status.AFFIRMING or appraised_at is None:
        return False
    now = now or timezone.now()
    return appraised_at >= now - timedelta(seconds=int(setting("ATTESTATION_VALIDITY_SECONDS")))


def appraisal_from_record(record: AttestationRecord) -> Appraisal:
    return Appraisal(
        status=record.status,
        backend=record.backend,
        reasons=list(record.reasons),
        trust_vector=dict(record.trust_vector),
        claims=dict(record.claims),
        agent_kid=record.agent_kid,
        model=record.model,
        raw_result=bytes(record.raw_result or b""),
        challenge_hash=record.challenge_hash,
        record_id=record.pk,
    )


def fleet_summary(now: datetime | None = None) -> dict[str, Any]:
    """Devices counted by their latest attestation status, and those whose attestation is stale."""
    from django.db.models import OuterRef, Subquery

    now = now or timezone.now()
    validity = timedelta(seconds=int(setting("ATTESTATION_VALIDITY_SECONDS")))
    latest = (
        AttestationRecord.objects.filter(agent_kid=OuterRef("kid"))
        .exclude(status="error")
        .order_by("-created_at", "-id")
    )
    devices = (
        Device.objects.exclude(state=Device.State.RETIRED)
        .annotate(
            att_status=Subquery(latest.values("status")[:1]),
            att_at=Subquery(latest.values("created_at")[:1]),
        )
        .order_by("kid")
    )
    counts: dict[str, int] = {}
    stale = []
    for device in devices:
        status = device.att_status or "never"
        counts[status] = counts.get(status, 0) + 1
        if device.registration == Device.Registration.ATTESTED or device.att_status:
            if device.att_status != "affirming" or device.att_at < now - validity:
                stale.append(device)
    return {
        "counts": dict(sorted(counts.items())),
        "stale": stale,
        "validity_seconds": int(validity.total_seconds()),
    }


# --- Endorsements and reference values (operators) ----------------------------------------------


@transaction.atomic
def register_attestation_key(
    *,
    public_key_bytes: bytes | str,
    name: str,
    purpose: str = "endorsement",
    ueid: str = "",
    actor=None,
    request=None,
) -> AttestationKey:
    """Trust a key to sign Evidence (endorsement) or Attestation Results (verifier)."""
    try:
        key = load_public_key(public_key_bytes)
    except ValueError as exc:
        raise AttestationServiceError(f"not a usable public key: {exc}") from None
    if purpose not in AttestationKey.Purpose.values:
        raise AttestationServiceError(
            f"purpose must be one of {', '.join(AttestationKey.Purpose.values)}"
        )
    ueid = _hex(ueid, "UEID") if ueid else ""
    kid = key.kid.hex()
    if AttestationKey.objects.filter(kid=kid).exists():
        raise AttestationServiceError(f"an attestation key with key id {kid} is already registered")
    row = AttestationKey.objects.create(
        name=(name or f"key {kid[:16]}")[:150],
        purpose=purpose,
        kid=kid,
        public_key=cbor2.dumps(key.to_cose_key(), canonical=True),
        public_key_pem=key.public_pem().decode(),
        ueid=ueid,
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    record_operator_action(
        actor=actor,
        action="attestation.key.register",
        obj=row,
        request=request,
        after={"kid": kid, "name": row.name, "purpose": purpose, "ueid": ueid},
    )
    return row


@transaction.atomic
def set_attestation_key_active(
    key: AttestationKey, *, active: bool, actor=None, request=None
) -> AttestationKey:
    row = AttestationKey.objects.select_for_update().get(pk=key.pk)
    if row.active != active:
        before = row.active
        row.active = active
        row.save(update_fields=["active"])
        record_operator_action(
            actor=actor,
            action="attestation.key." + ("activate" if active else "deactivate"),
            obj=row,
            request=request,
            before={"active": before},
            after={"active": active},
        )
    return row


def _hex(value: str, what: str) -> str:
    cleaned = "".join(str(value).split()).replace(":", "").lower()
    if cleaned.startswith("0x"):
        cleaned = cleaned[2:]
    try:
        bytes.fromhex(cleaned)
    except ValueError:
        raise AttestationServiceError(f"{what} must be hex, not {value!r}") from None
    if not cleaned:
        raise AttestationServiceError(f"{what} is empty")
    return cleaned


def _normalise_reference(
    claim: str, expected: str, measurement_name: str, scope_hwmodel: str
) -> dict:
    if claim not in ReferenceValue.Claim.values:
        raise AttestationServiceError(
            f"claim must be one of {', '.join(ReferenceValue.Claim.values)}, not {claim!r}"
        )
    expected = str(expected or "").strip()
    if claim == "hwversion":
        if not expected:
            raise AttestationServiceError("hwversion needs the expected version text")
    elif claim == "oemid" and expected.lower().startswith("pen:"):
        if not expected[4:].isdigit():
            raise AttestationServiceError(f"oemid PEN must be decimal: {expected!r}")
        expected = "pen:" + str(int(expected[4:]))
    else:
        expected = _hex(expected, claim)
    if claim == "measurement" and not measurement_name:
        raise AttestationServiceError(
            "a measurement reference value needs the measured component's name"
        )
    if claim != "measurement" and measurement_name:
        raise AttestationServiceError("measurement_name is only for measurement reference values")
    return {
        "claim": claim,
        "expected": expected,
        "measurement_name": measurement_name.strip(),
        "scope_hwmodel": _hex(scope_hwmodel, "scope hwmodel") if scope_hwmodel else "",
    }


@transaction.atomic
def create_reference_value(
    *,
    name: str,
    claim: str,
    expected: str,
    measurement_name: str = "",
    scope_hwmodel: str = "",
    actor=None,
    request=None,
) -> ReferenceValue:
    fields = _normalise_reference(claim, expected, measurement_name, scope_hwmodel)
    if ReferenceValue.objects.filter(**fields).exists():
        raise AttestationServiceError("this reference value already exists")
    row = ReferenceValue.objects.create(
        name=(name or claim)[:150], created_by=_user(actor), **fields
    )
    record_operator_action(
        actor=actor,
        action="attestation.reference-value.create",
        obj=row,
        request=request,
        after={"name": row.name, **fields},
    )
    return row


@dataclass
class ImportResult:
    created: list
    skipped: int


REFERENCE_CSV_COLUMNS = ("name", "claim", "measurement_name", "expected", "scope_hwmodel")


def _read_upload(file) -> str:
    data = file.read() if hasattr(file, "read") else file
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise AttestationServiceError("the file is not UTF-8 text") from None
    if len(data) > 2_000_000:
        raise AttestationServiceError("the file is too large (2 MB at most)")
    return data


def _parse_reference_rows(text: str) -> list[dict]:
    """JSON: a list of objects (or {"reference_values": [...]}) with the CSV column names;
    CSV: a header row naming the columns name, claim, measurement_name, expected, scope_hwmodel
    (measurement_name and scope_hwmodel may be omitted)."""
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        try:
            document = json.loads(stripped)
        except ValueError as exc:
            raise AttestationServiceError(f"not valid JSON: {exc}") from None
        if isinstance(document, dict):
            document = document.get("reference_values")
        if not isinstance(document, list) or not all(isinstance(r, dict) for r in document):
            raise AttestationServiceError(
                'JSON must be a list of objects or {"reference_values": [...]}'
            )
        return document
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or not {"claim", "expected"} <= {f.strip() for f in reader.fieldnames}:
        raise AttestationServiceError(
            f"CSV needs a header row with the columns {', '.join(REFERENCE_CSV_COLUMNS)}"
        )
    return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]


@transaction.atomic
def import_reference_values(file, *, actor=None, request=None) -> ImportResult:
    """Reference values from a JSON or CSV file; all or nothing, existing ones skipped."""
    rows = _parse_reference_rows(_read_upload(file))
    prepared = []
    for number, row in enumerate(rows, start=1):
        try:
            fields = _normalise_reference(
                str(row.get("claim", "")).strip(),
                str(row.get("expected", "")),
                str(row.get("measurement_name", "") or ""),
                str(row.get("scope_hwmodel", "") or ""),
            )
        except AttestationServiceError as exc:
            raise AttestationServiceError(f"row {number}: {exc}") from None
        prepared.append((str(row.get("name") or fields["claim"])[:150], fields))
    created, skipped = [], 0
    for name, fields in prepared:
        if ReferenceValue.objects.filter(**fields).exists():
            skipped += 1
            continue
        created.append(ReferenceValue.objects.create(name=name, created_by=_user(actor), **fields))
    record_operator_action(
        actor=actor,
        action="attestation.reference-value.import",
        request=request,
        detail={"created": len(created), "skipped": skipped, "ids": [r.pk for r in created][:200]},
    )
    return ImportResult(created=created, skipped=skipped)


@transaction.atomic
def import_attestation_keys(file, *, actor=None, request=None) -> ImportResult:
    """Attestation keys from JSON: a list of {"name", "purpose", "public_key" (PEM or COSE_Key
    hex) or "jwk", "ueid"}, or a JWK Set {"keys": [...]} (names from each JWK's kid)."""
    text = _read_upload(file)
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise AttestationServiceError(f"not valid JSON: {exc}") from None
    if isinstance(document, dict) and isinstance(document.get("keys"), list):
        entries = [
            {
                "name": str(j.get("kid") or ""),
                "jwk": j,
                "purpose": document.get("purpose", "endorsement"),
            }
            for j in document["keys"]
        ]
    elif isinstance(document, list):
        entries = document
    else:
        raise AttestationServiceError('JSON must be a list of keys or a JWK Set {"keys": [...]}')
    created, skipped = [], 0
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise AttestationServiceError(f"entry {number}: not an object")
        try:
            if "jwk" in entry:
                key = eat.key_from_jwk(entry["jwk"])
                public = key.public_pem()
            else:
                public = str(entry.get("public_key") or "").encode()
                key = load_public_key(public)
        except ValueError as exc:
            raise AttestationServiceError(
                f"entry {number}: not a usable public key: {exc}"
            ) from None
        if AttestationKey.objects.filter(kid=key.kid.hex()).exists():
            skipped += 1
            continue
        try:
            created.append(
                register_attestation_key(
                    public_key_bytes=public,
                    name=str(entry.get("name") or ""),
                    purpose=str(entry.get("purpose") or "endorsement"),
                    ueid=str(entry.get("ueid") or ""),
                    actor=actor,
                    request=request,
                )
            )
        except AttestationServiceError as exc:
            raise AttestationServiceError(f"entry {number}: {exc}") from None
    return ImportResult(created=created, skipped=skipped)


def _user(actor):
    return actor if getattr(actor, "pk", None) else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Iterable) and not isinstance(value, str):
        return [_jsonable(v) for v in value]
    return value
