"""Attestation bootstrap (DESIGN.md "Attestation bootstrap"; TEEP 7.1.1, 7.1.1.1): an agent
key the TAM does not know, or does not trust (yet), is asked for attestation; what it sends
is appraised, and an affirming result trusts the key and lets its QueryResponse go on to
policy (the caller's `continue_with`)."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.attestation import services as attestation
from apps.attestation.appraisal import VerifierUnavailable
from apps.devices import services as device_services
from apps.devices.models import Device
from apps.tam import outgoing
from apps.tam.exchange import Exchange, TamAnswer, TamUnavailable
from apps.teep import tokens
from apps.teep.wire import cose, eat, messages
from apps.teep.wire.errors import CoseError, TeepDecodeError, WireError
from apps.teep.wire.keys import TeepKey

VERIFIER_RETRY_AFTER_SECONDS = 5


def is_trusted(snap) -> bool:
    """Registered by hand and not required to attest, or attested recently enough. `snap`:
    the device as the TAM read it with its row lock (apps/devices/snapshot.py)."""
    device = snap.device
    if device.state == Device.State.UNTRUSTED:
        return False
    if device.registration == Device.Registration.MANUAL and not attestation_required(snap):
        return True
    return attestation.is_fresh_appraisal(snap.appraisal_status, snap.appraisal_at)


def attestation_required(snap) -> bool:
    """Globally (TEEP_REQUIRE_ATTESTATION), or by a policy group the device belongs to."""
    from apps.policies import world as worlds

    if settings.TEEP_REQUIRE_ATTESTATION:
        return True
    if not snap.any_group_requires_attestation:  # the common case: nothing more to read
        return False
    groups = worlds.for_epoch(snap.epoch).groups_for(snap.tag_ids, snap.device.attributes or {})
    return any(g.require_attestation for g in groups)


def signing_alg(signed, key) -> int:
    return next((s.alg for s in signed.signatures if s.alg in key.algorithms), key.default_algorithm)


def bootstrap(exchange: Exchange, signed, device: Device | None, *, continue_with) -> TamAnswer:
    """An unknown or untrusted agent key: ask for attestation, or appraise what it sent.
    `continue_with(exchange, device, message, alg, answered=token)` handles the QueryResponse
    once the key is trusted."""
    numbering = exchange.numbering
    try:
        message = messages.decode(signed.payload or b"", numbering)
    except TeepDecodeError as exc:
        return exchange.drop(f"invalid TEEP message: {exc}")
    exchange.type_in = messages.message_type_name(message)
    if not isinstance(message, messages.QueryResponse):
        who = "unknown agent key" if device is None else "agent key not trusted (attestation required)"
        return exchange.drop(f"{who}: {exchange.type_in} refused (kid {exchange.device_kid or 'absent'})")
    if device is not None:
        # A registered key whose attestation is stale or failed: its signature is checkable.
        try:
            cose.verify(signed, device_services.device_public_key(device))
        except CoseError as exc:
            return exchange.drop(f"signature does not verify with the agent's key: {exc}")
    if message.attestation_payload is None:
        # Step 3: a QueryRequest with a challenge and the attestation bit. For an unknown key
        # nothing is authenticated yet, so nothing is recorded and no token is consumed.
        alg = signed.signatures[0].alg
        if alg not in cose.DEFAULT_ALLOWED_ALGS:
            return exchange.drop(f"agent signs with an algorithm the TAM does not accept ({alg})")
        with transaction.atomic():
            body, challenge = outgoing.challenge_request(numbering, alg, device, now=timezone.now())
        exchange.detail["challenge"] = tokens.reference(challenge)
        return exchange.answer(body, "query-request", "attestation required", message_type="query-request")
    return _appraise_and_continue(exchange, signed, device, message, continue_with)


def _appraise_and_continue(exchange, signed, device, message, continue_with) -> TamAnswer:
    """Step 4: Evidence goes to the Verifier, an Attestation Result is checked here; an
    affirming result trusts the key and the same QueryResponse goes on to policy."""
    numbering = exchange.numbering
    kind = eat.attestation_payload_kind(message.attestation_payload_format)
    exchange.detail["attestation"] = kind
    try:
        if kind == "evidence":
            evidence = attestation.decrypt_evidence(message.attestation_payload)
            claims, _ = eat.parse_eat(evidence)
            nonce = eat.eat_nonce(claims)
        else:
            evidence, nonce = message.attestation_payload, None
            claims, _ = eat.parse_eat(evidence)
        agent_key = _agent_key_for(device, claims)
    except WireError as exc:
        return exchange.drop(f"attestation payload unusable: {exc}")
    if agent_key is None:
        return exchange.drop("attestation payload names no key for an unknown agent (cnf without COSE_Key)")
    kid = signed.signatures[0].kid
    if kid and kid != agent_key.kid:
        return exchange.drop("the message's kid is not the attested key (cnf)")
    try:
        cose.verify(signed, agent_key)
    except CoseError as exc:
        return exchange.drop(f"signature does not verify with the attested key: {exc}")
    exchange.device_kid = agent_key.kid.hex()
    alg = signing_alg(signed, agent_key)
    now = timezone.now()

    if kind == "evidence":
        if nonce is None:
            return exchange.drop("Evidence without eat_nonce: the challenge cannot be checked")
        challenge = tokens.claim_challenge(nonce, device=device, now=now)
        if challenge is None:
            return exchange.drop("unknown, expired or already used challenge")
        try:
            appraisal = attestation.request_appraisal_and_wait(
                evidence=evidence, media_type=message.attestation_payload_format or "",
                challenge=nonce, agent_key=agent_key, device=device,
                challenge_expires_at=challenge.expires_at,
            )
        except VerifierUnavailable:
            raise TamUnavailable(VERIFIER_RETRY_AFTER_SECONDS, "verifier") from None
        if appraisal is None:  # still appraising: the agent's retry will find the result
            exchange.audit(TamAnswer(None, "dropped", "attestation still being appraised: 503"))
            raise TamUnavailable(VERIFIER_RETRY_AFTER_SECONDS, "verifier")
    else:
        challenge = None
        appraisal = attestation.check_attestation_result(payload=evidence, agent_key=agent_key)
        attestation.record_appraisal(device or agent_key.kid.hex(), appraisal, agent_key=agent_key)

    exchange.detail["appraisal"] = {"status": appraisal.status, "reasons": appraisal.reasons[:5]}
    device = Device.objects.filter(kid=agent_key.kid.hex()).first()
    if not appraisal.affirming:
        # 7.1.1.1 case 1: the TAM cannot repair the device: ERR_ATTESTATION_REQUIRED.
        with transaction.atomic():
            body, _ = outgoing.update(
                device, numbering, alg, now=now, err_code=numbering.err_code("ERR_ATTESTATION_REQUIRED"),
                err_msg=f"attestation {appraisal.status}: {appraisal.reason}",
            )
        return exchange.answer(body, "update", f"attestation {appraisal.status}", message_type="update")
    if device is None:
        return exchange.drop("affirming result but no device was recorded for the key")
    if challenge is not None:
        tokens.bind(challenge, device)
    else:  # Passport model: no challenge was issued for this answer
        challenge = tokens.consumed_stand_in(
            now=now, data_item_requested=messages.ATTESTATION | outgoing.DEFAULT_DATA_ITEMS,
        )
    return continue_with(exchange, device, message, alg, answered=challenge)


def _agent_key_for(device, claims):
    """The registered key, or for an unknown agent the COSE_Key its EAT confirms (cnf)."""
    if device is not None:
        return device_services.device_public_key(device)
    confirmed = eat.cnf_key_or_kid(claims)
    return confirmed if isinstance(confirmed, TeepKey) else None
