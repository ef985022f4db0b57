"""The TAM state machine: the bytes of one incoming TEEP message (or none) in, the bytes to
send (or none) out. No HTTP here (apps/tam/views.py maps answers to status codes).

TEEP references: 4.1.2 validation, 4.2 QueryRequest, 7.1 TAM behaviour (token handling),
7.1.1 handling a QueryResponse, 7.1.2 handling Success and Error, 8.1 cipher suites.
DESIGN.md: "TEEP over HTTP: the answers we give", "Freshness and sessions".

Every state change for a device happens in one transaction holding that device's row lock;
a message that cannot be authenticated or parsed changes nothing and is dropped with an
audit entry saying why.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.attestation import services as attestation
from apps.attestation.appraisal import VerifierUnavailable
from apps.audit.services import record_exchange
from apps.devices import services as device_services
from apps.devices.models import Device
from apps.teep.models import TeepToken
from apps.tam.ratelimit import check_rate
from apps.teep.tam_keys import tam_keys
from apps.teep.wire import ciphersuites, cose, eat, messages
from apps.teep.wire.errors import CoseError, SuitError, TeepDecodeError, WireError
from apps.teep.wire.keys import TeepKey
from apps.teep.wire.numbering import Numbering
from apps.teep.wire.suit import parse_report

logger = logging.getLogger(__name__)

TOKEN_BYTES = 32
# eat_nonce is 8..64 bytes (RFC 9711 4.1), Veraison's nonces too; TEEP allows up to 512.
CHALLENGE_BYTES = 32
VERIFIER_RETRY_AFTER_SECONDS = 5
# What every QueryRequest asks for: the installed components and any SUIT reports (4.2).
DEFAULT_DATA_ITEMS = messages.TRUSTED_COMPONENTS | messages.SUIT_REPORTS


@dataclass(frozen=True)
class TamAnswer:
    """What to send back: a TEEP message (body) or nothing."""

    body: bytes | None
    outcome: str  # "query-request", "update", "nothing-due", "dropped"
    reason: str = ""
    message_type: str = ""

    @property
    def dropped(self) -> bool:
        return self.outcome == "dropped"


class TamUnavailable(Exception):
    """A backend the TAM needs (e.g. the Verifier) is unreachable or too slow: 503."""

    def __init__(self, retry_after: int, backend: str):
        super().__init__(f"{backend} unavailable")
        self.retry_after = retry_after
        self.backend = backend


class TamRateLimited(Exception):
    def __init__(self, retry_after: int, scope: str):
        super().__init__(f"too many requests from this {scope}")
        self.retry_after = retry_after
        self.scope = scope


@dataclass
class _Exchange:
    """Facts about one exchange, gathered for its audit entry."""

    numbering: Numbering
    source_ip: str | None
    size_in: int
    started: float = field(default_factory=time.monotonic)
    device_kid: str = ""
    type_in: str = ""
    detail: dict = field(default_factory=dict)

    def audit(self, answer: TamAnswer) -> TamAnswer:
        record_exchange(
            action=f"teep.{self.type_in or 'unknown'}" if self.size_in else "teep.connect",
            outcome=answer.outcome,
            device_kid=self.device_kid,
            reason=answer.reason,
            source_ip=self.source_ip,
            detail={
                "numbering": self.numbering.name,
                "in": self.type_in or ("empty" if not self.size_in else "unparsed"),
                "out": answer.message_type or None,
                "bytes_in": self.size_in,
                "bytes_out": len(answer.body or b""),
                "duration_ms": round((time.monotonic() - self.started) * 1000, 2),
                **self.detail,
            },
        )
        return answer

    def drop(self, reason: str) -> TamAnswer:
        logger.info("TEEP message dropped: %s (device %s)", reason, self.device_kid or "unknown")
        return self.audit(TamAnswer(None, "dropped", reason))


# --- ProcessConnect: an empty POST --------------------------------------------------------------


def process_connect(*, numbering: Numbering, source_ip: str | None = None) -> TamAnswer:
    """Answer an agent that starts a session with a QueryRequest (TEEP 7.1, 8.1).

    The TAM cannot know who sent an empty POST, so the QueryRequest is a COSE_Sign with one
    signature per offered algorithm (TEEP 8.1), and its token is not yet bound to a device.
    """
    exchange = _Exchange(numbering, source_ip, 0)
    _check_source_rate(source_ip)
    with transaction.atomic():
        body, token = _issue_query_request(numbering, suites=ciphersuites.TAM_OFFERED_SUITES, device=None,
                                           source_ip=source_ip)
        exchange.detail["token"] = _token_ref(token)
        return exchange.audit(TamAnswer(body, "query-request", message_type="query-request"))


def _issue_query_request(numbering: Numbering, *, suites, device, attestation_payload=None,
                         attestation_payload_format=None, source_ip=None) -> tuple[bytes, bytes]:
    """Build, sign and record a QueryRequest. With several suites (nothing known of the
    agent) it is a COSE_Sign with a signature per algorithm; with one, a COSE_Sign1 (8.1)."""
    token = _new_token_value()
    request = messages.QueryRequest(
        token=token,
        versions=ciphersuites.SUPPORTED_VERSIONS,
        attestation_payload_format=attestation_payload_format,
        attestation_payload=attestation_payload,
        supported_teep_cipher_suites=tuple(suites),
        supported_suit_cose_profiles=ciphersuites.TAM_SUIT_COSE_PROFILES,
        data_item_requested=DEFAULT_DATA_ITEMS,
    )
    payload = messages.encode(request, numbering)
    keys = tam_keys()
    algs = [ciphersuites.algorithm_of_suite(suite) for suite in suites]
    if len(algs) == 1:
        body = cose.sign1(payload, keys.signing_key_for(algs[0]), algs[0])
    else:
        body = cose.sign(payload, [(keys.signing_key_for(alg), alg) for alg in algs])
    TeepToken.objects.create(
        value=token,
        kind=TeepToken.Kind.QUERY_REQUEST,
        device=device,
        numbering=numbering.name,
        data_item_requested=DEFAULT_DATA_ITEMS,
        expires_at=timezone.now() + timedelta(seconds=settings.TEEP_TOKEN_LIFETIME_SECONDS),
        source_ip=source_ip,
    )
    return body, token


# --- ProcessTeepMessage ---------------------------------------------------------------------


def process_teep_message(body: bytes, *, numbering: Numbering, source_ip: str | None = None) -> TamAnswer:
    exchange = _Exchange(numbering, source_ip, len(body))
    _check_source_rate(source_ip)

    # 4.1.2 steps 1-2: a COSE_Sign1 or COSE_Sign structure.
    try:
        signed = cose.parse(body)
    except CoseError as exc:
        return exchange.drop(f"not a COSE_Sign1/COSE_Sign message: {exc}")
    signature = signed.signatures[0]
    device = _find_device(signed, numbering)
    exchange.device_kid = device.kid if device else (signature.kid.hex() if signature.kid else "")
    if exchange.device_kid:
        _check_device_rate(exchange.device_kid)
    if device is not None and device.state == Device.State.RETIRED:
        return exchange.drop("device is retired")
    if device is None or not _is_trusted(device):
        # DESIGN.md "Attestation bootstrap", steps 3-4.
        return _attestation_bootstrap(exchange, signed, device)

    # 4.1.2 step 4: the signature, with the key registered for this agent.
    agent_key = device_services.device_public_key(device)
    try:
        payload = cose.verify(signed, agent_key)
    except CoseError as exc:
        return exchange.drop(f"signature does not verify with the agent's key: {exc}")
    signing_alg = _signing_alg(signed, agent_key)

    # 4.1.2 step 5: the TEEP message itself.
    try:
        message = messages.decode(payload, numbering)
    except TeepDecodeError as exc:
        return exchange.drop(f"invalid TEEP message: {exc}")
    exchange.type_in = messages.message_type_name(message)
    if getattr(message, "ignored_labels", ()):
        exchange.detail["ignored_labels"] = list(message.ignored_labels)

    if isinstance(message, messages.QueryResponse):
        return _handle_query_response(exchange, device, message, signing_alg)
    if isinstance(message, messages.Success):
        return _handle_success(exchange, device, message)
    if isinstance(message, messages.Error):
        return _handle_error(exchange, device, message)
    return exchange.drop(f"a TEEP Agent does not send {exchange.type_in} messages")


def _find_device(signed, numbering: Numbering) -> Device | None:
    """The device whose key signed this: by kid; for agents that send no kid (DESIGN.md:
    older drafts), by the device a token in the still-unverified payload was issued to."""
    for signature in signed.signatures:
        if signature.kid:
            device = Device.objects.filter(kid=signature.kid.hex()).first()
            if device is not None:
                return device
    if any(s.kid for s in signed.signatures):
        return None
    token = messages.peek_token(signed.payload or b"", numbering)
    if token is None:
        return None
    row = TeepToken.objects.filter(value=token).select_related("device").first()
    return row.device if row is not None else None


# --- QueryResponse (TEEP 7.1.1) ---------------------------------------------------------------


def _handle_query_response(exchange, device, message, signing_alg, *, attested_challenge=None) -> TamAnswer:
    """`attested_challenge`: the (already consumed) challenge row when this QueryResponse
    answered an attestation QueryRequest, which carries no token (TEEP 4.2)."""
    now = timezone.now()
    if message.token is None and attested_challenge is None:
        return exchange.drop("QueryResponse without a token to a QueryRequest that had one")
    if message.token is not None:
        exchange.detail["token"] = _token_ref(message.token)
    reports, report_problem = _parse_reports(message.suit_reports, message.token, device)
    with transaction.atomic():
        device = device_services.lock_device(device.pk)
        if attested_challenge is not None:
            token = attested_challenge
        else:
            token = _claim_token(message.token, device, (TeepToken.Kind.QUERY_REQUEST,), now)
        if token is None:
            return exchange.drop("unknown, expired or already used token")
        problems = _missing_items(token.data_item_requested, message)
        if report_problem:
            problems.append(report_problem)
        if problems:
            # 7.1.1: drop what it said, and answer an Update carrying err-code and err-msg.
            update = messages.Update(
                token=_issue_update_token(device, exchange.numbering, now),
                err_code=exchange.numbering.err_code("ERR_PERMANENT_ERROR"),
                err_msg=_short("; ".join(problems), 128),
            )
            exchange.detail["problems"] = problems
            body = _sign_for_device(update, exchange.numbering, signing_alg)
            return exchange.audit(TamAnswer(body, "update", "; ".join(problems), message_type="update"))

        device_services.record_reported_state(
            device,
            tc_list=message.tc_list,
            requested_tc_list=message.requested_tc_list,
            unneeded_manifest_list=message.unneeded_manifest_list,
            ext_list=message.ext_list,
            selected_version=message.selected_version,
            signing_alg=signing_alg,
            numbering=exchange.numbering.name,
            now=now,
        )
        device_services.store_suit_reports(device, "query-response", reports)
        plan = device_services.compute_due(device, now=now)
        if not plan:
            return exchange.audit(TamAnswer(None, "nothing-due"))
        update_token_value = _issue_update_token(device, exchange.numbering, now)
        update_token = TeepToken.objects.get(value=update_token_value)
        items = device_services.record_deliveries(device, update_token, plan)
        update = messages.Update(
            token=update_token_value,
            manifest_list=plan.manifest_list or None,
            unneeded_manifest_list=[
                _component_id_from_key(manifest_key) for _, manifest_key, _, _ in plan.removals
            ] or None,
        )
        exchange.detail["deliveries"] = [
            {"kind": i.kind, "component": i.component_key, "version": i.version_id} for i in items
        ]
        body = _sign_for_device(update, exchange.numbering, signing_alg)
        return exchange.audit(TamAnswer(body, "update", message_type="update"))


def _missing_items(requested_bits: int, message) -> list[str]:
    problems = []
    if requested_bits & messages.TRUSTED_COMPONENTS and message.tc_list is None:
        problems.append("tc-list is missing but trusted-components was requested")
    if requested_bits & messages.EXTENSIONS and message.ext_list is None:
        problems.append("ext-list is missing but extensions was requested")
    if requested_bits & messages.ATTESTATION and message.attestation_payload is None:
        problems.append("attestation-payload is missing but attestation was requested")
    return problems


def _parse_reports(raw_reports, token: bytes | None, device) -> tuple[list, str]:
    """Parse SUIT reports; each must carry the token as its nonce (4.3, 4.5, 4.6, 7.1.1)."""
    parsed = []
    # TEEP 8.2: reports may be encrypted to the TAM (ES-DH, "SUIT Report Encryption").
    decrypt_key = tam_keys().signing_key_for(-9) if raw_reports else None
    for index, raw in enumerate(raw_reports or []):
        try:
            result = parse_report(raw, decrypt_key=decrypt_key)
        except SuitError as exc:
            return [], f"suit-reports[{index}] cannot be parsed: {exc}"
        if token is not None and result.report.nonce != token:
            return [], f"suit-reports[{index}] nonce does not match the token"
        if result.kid and result.kid.hex() == device.kid:
            return [], f"suit-reports[{index}] is signed with the TEEP message's own key"
        parsed.append((raw, result))
    return parsed, ""


# --- Attestation bootstrap (DESIGN.md; TEEP 7.1.1, 7.1.1.1) --------------------------------


def _is_trusted(device: Device) -> bool:
    """Registered by hand and not required to attest, or attested recently enough."""
    if device.state == Device.State.UNTRUSTED:
        return False
    if device.registration == Device.Registration.MANUAL and not _attestation_required(device):
        return True
    return attestation.is_attestation_fresh(device)


def _attestation_required(device: Device) -> bool:
    """Globally (TEEP_REQUIRE_ATTESTATION), or by a policy group the device belongs to."""
    from apps.policies.models import DeviceGroup
    from apps.policies.resolution import groups_of

    if settings.TEEP_REQUIRE_ATTESTATION:
        return True
    if not DeviceGroup.objects.filter(require_attestation=True).exists():  # the common case: 1 query
        return False
    return any(g.require_attestation for g in groups_of(device))


def _signing_alg(signed, key) -> int:
    return next((s.alg for s in signed.signatures if s.alg in key.algorithms), key.default_algorithm)


def _attestation_bootstrap(exchange, signed, device) -> TamAnswer:
    """An unknown or untrusted agent key: ask for attestation, or appraise what it sent."""
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
            body, challenge = _issue_challenge_request(numbering, alg, device)
        exchange.detail["challenge"] = _token_ref(challenge)
        return exchange.audit(TamAnswer(body, "query-request", "attestation required",
                                        message_type="query-request"))
    return _appraise_and_continue(exchange, signed, device, message)


def _issue_challenge_request(numbering: Numbering, alg: int, device) -> tuple[bytes, bytes]:
    """QueryRequest with a 32-byte challenge, the attestation bit and no token (TEEP 4.2),
    signed with the agent's own suite; the challenge is stored like a token, single use."""
    challenge = secrets.token_bytes(CHALLENGE_BYTES)
    bits = messages.ATTESTATION | DEFAULT_DATA_ITEMS
    request = messages.QueryRequest(
        challenge=challenge,
        versions=ciphersuites.SUPPORTED_VERSIONS,
        supported_teep_cipher_suites=(ciphersuites.suite_for_algorithm(alg),),
        supported_suit_cose_profiles=ciphersuites.TAM_SUIT_COSE_PROFILES,
        data_item_requested=bits,
    )
    key = tam_keys().signing_key_for(alg)
    body = cose.sign1(messages.encode(request, numbering), key, alg)
    TeepToken.objects.create(
        value=challenge,
        kind=TeepToken.Kind.CHALLENGE,
        device=device,
        numbering=numbering.name,
        data_item_requested=bits,
        expires_at=timezone.now() + timedelta(seconds=settings.TEEP_TOKEN_LIFETIME_SECONDS),
    )
    return body, challenge


def _appraise_and_continue(exchange, signed, device, message) -> TamAnswer:
    """Step 4: Evidence goes to the Verifier, an Attestation Result is checked here; an
    affirming result trusts the key and the same QueryResponse goes on to policy."""
    numbering = exchange.numbering
    kind = eat.attestation_payload_kind(message.attestation_payload_format)
    exchange.detail["attestation"] = kind
    try:
        if kind == "evidence":
            evidence = attestation.decrypt_evidence(message.attestation_payload)
            claims, _ = eat.parse_eat(evidence)
            agent_key = _agent_key_for(device, claims)
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
    alg = _signing_alg(signed, agent_key)
    now = timezone.now()

    if kind == "evidence":
        if nonce is None:
            return exchange.drop("Evidence without eat_nonce: the challenge cannot be checked")
        challenge = _claim_challenge(nonce, device, now)
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
            update = messages.Update(
                token=_issue_update_token(device, numbering, now),
                err_code=numbering.err_code("ERR_ATTESTATION_REQUIRED"),
                err_msg=_short(f"attestation {appraisal.status}: {appraisal.reason}", 128),
            )
            body = _sign_for_device(update, numbering, alg)
        return exchange.audit(TamAnswer(body, "update", f"attestation {appraisal.status}", message_type="update"))
    if device is None:
        return exchange.drop("affirming result but no device was recorded for the key")
    if challenge is not None and challenge.device_id is None:
        TeepToken.objects.filter(pk=challenge.pk).update(device=device)
    return _handle_query_response(exchange, device, message, alg,
                                  attested_challenge=challenge or _passport_token(device, numbering, now))


def _agent_key_for(device, claims):
    """The registered key, or for an unknown agent the COSE_Key its EAT confirms (cnf)."""
    if device is not None:
        return device_services.device_public_key(device)
    confirmed = eat.cnf_key_or_kid(claims)
    return confirmed if isinstance(confirmed, TeepKey) else None


def _claim_challenge(value: bytes, device, now) -> TeepToken | None:
    candidates = TeepToken.objects.filter(value=value, kind=TeepToken.Kind.CHALLENGE).outstanding(now)
    if device is not None:
        candidates = candidates.filter(Q(device=device) | Q(device__isnull=True))
    if candidates.update(consumed_at=now) != 1:
        return None
    return TeepToken.objects.get(value=value)


def _passport_token(device, numbering, now) -> TeepToken:
    """A consumed stand-in for the QueryRequest a Passport-model answer replied to, so that
    the data-items check of 7.1.1 knows what was asked."""
    return TeepToken.objects.create(
        value=_new_token_value(), kind=TeepToken.Kind.CHALLENGE, device=device, numbering=numbering.name,
        data_item_requested=messages.ATTESTATION | DEFAULT_DATA_ITEMS, expires_at=now, consumed_at=now,
    )


# --- Success and Error (TEEP 7.1.2) -----------------------------------------------------------


def _handle_success(exchange, device, message) -> TamAnswer:
    now = timezone.now()
    if message.token is None:
        return exchange.drop("Success without a token: the TAM always sends one in an Update")
    exchange.detail["token"] = _token_ref(message.token)
    reports, problem = _parse_reports(message.suit_reports, message.token, device)
    if problem:
        return exchange.drop(problem)
    with transaction.atomic():
        device = device_services.lock_device(device.pk)
        token = _claim_token(message.token, device, (TeepToken.Kind.UPDATE,), now)
        if token is None:
            return exchange.drop("unknown, expired or already used token")
        items = device_services.settle_success(device, token, now=now)
        device_services.store_suit_reports(device, "success", reports)
        exchange.detail["settled"] = [{"kind": i.kind, "component": i.component_key} for i in items]
        return exchange.audit(TamAnswer(None, "nothing-due", message.msg or ""))


def _handle_error(exchange, device, message) -> TamAnswer:
    now = timezone.now()
    numbering = exchange.numbering
    name = numbering.err_code_names.get(message.err_code, f"unknown error {message.err_code}")
    exchange.detail.update(err_code=message.err_code, err_name=name, err_msg=message.err_msg or "")
    reports, problem = _parse_reports(message.suit_reports, message.token, device)
    if problem:
        return exchange.drop(problem)
    with transaction.atomic():
        device = device_services.lock_device(device.pk)
        token = None
        if message.token is not None:
            exchange.detail["token"] = _token_ref(message.token)
            token = _claim_token(
                message.token, device, (TeepToken.Kind.UPDATE, TeepToken.Kind.QUERY_REQUEST), now
            )
            if token is None:
                return exchange.drop("unknown, expired or already used token")
        device_services.record_agent_error(
            device,
            code=message.err_code,
            name=name,
            message=message.err_msg,
            cipher_suites=message.supported_teep_cipher_suites,
            versions=message.versions,
            now=now,
        )
        if token is not None and token.kind == TeepToken.Kind.UPDATE:
            failed = {
                result.report.manifest_digest.value.hex(): f"{name}: {device_services.summarize_report(result)}"
                for _, result in reports
                if not result.report.success
            }
            device_services.settle_failure(
                device,
                token,
                reason=f"{name}: {message.err_msg or 'no message'}",
                retryable=name == "ERR_TEMPORARY_ERROR",
                failed_digests=failed,
                now=now,
            )
        device_services.store_suit_reports(device, "error", reports)
        # 4.6: every reaction is bookkeeping or a retry; nothing destructive happens by itself.
        retry = _retry_after_error(name, message, numbering)
        if retry is not None:
            body, why = retry
            return exchange.audit(TamAnswer(body, "query-request", why, message_type="query-request"))
        return exchange.audit(TamAnswer(None, "nothing-due", f"agent reported {name}"))


def _retry_after_error(name: str, message, numbering: Numbering):
    """The retries TEEP 4.6 and 7.1.2 recommend, as (signed QueryRequest, reason) or None."""
    if name == "ERR_UNSUPPORTED_CIPHER_SUITES" and message.supported_teep_cipher_suites:
        # 4.6: "retry the request using a different set of supported cipher suites": one we
        # accept from older drafts (ES256, EdDSA) may be in the agent's list.
        suite = ciphersuites.select_cipher_suite(message.supported_teep_cipher_suites,
                                                 ciphersuites.TAM_ACCEPTED_SUITES)
        if suite is not None and suite not in ciphersuites.TAM_OFFERED_SUITES:
            body, _ = _issue_query_request(numbering, suites=[suite], device=None)
            return body, f"retrying with cipher suite {ciphersuites.suite_to_wire(suite)}"
        return None
    if name == "ERR_ATTESTATION_REQUIRED":
        # 7.1.2: the agent wants to attest the TAM; the TAM MUST answer a QueryRequest with an
        # attestation-payload. It can only if the operator configured one for this TAM.
        payload_file = getattr(settings, "TAM_ATTESTATION_PAYLOAD_FILE", "")
        if not payload_file:
            logger.warning("agent requires TAM attestation but TAM_ATTESTATION_PAYLOAD_FILE is not set")
            return None
        with open(payload_file, "rb") as handle:
            payload = handle.read()
        body, _ = _issue_query_request(
            numbering, suites=ciphersuites.TAM_OFFERED_SUITES, device=None,
            attestation_payload=payload,
            attestation_payload_format=getattr(settings, "TAM_ATTESTATION_PAYLOAD_FORMAT", None) or None,
        )
        return body, "answering with the TAM's attestation payload"
    return None


# --- Tokens (TEEP 4.1.1, 7.1; DESIGN.md "Freshness and sessions") ----------------------------


def _new_token_value() -> bytes:
    return secrets.token_bytes(TOKEN_BYTES)


def _token_ref(token: bytes) -> str:
    """Audit rows name a token by a short prefix, never the whole value."""
    return token[:4].hex()


def _claim_token(value: bytes, device: Device, kinds, now) -> TeepToken | None:
    """Consume a token exactly once (conditional UPDATE, ENGINEERING.md 3.4)."""
    candidates = TeepToken.objects.filter(value=value, kind__in=kinds).outstanding(now)
    claimed = candidates.filter(device__isnull=True).update(consumed_at=now, device=device) or candidates.filter(
        device=device
    ).update(consumed_at=now)
    if claimed != 1:
        return None
    return TeepToken.objects.get(value=value)


def _issue_update_token(device: Device, numbering: Numbering, now) -> bytes:
    """A fresh token bound to the device; past the per-device cap the oldest outstanding
    request is discarded (TEEP 7.1 allows it)."""
    cap = settings.TEEP_MAX_OUTSTANDING_TOKENS_PER_DEVICE
    outstanding = TeepToken.objects.filter(device=device).outstanding(now).order_by("issued_at")
    excess = outstanding.count() - cap + 1 if device is not None else 0
    if excess > 0:
        stale = list(outstanding.values_list("pk", flat=True)[:excess])
        TeepToken.objects.filter(pk__in=stale).update(expires_at=now)
    value = _new_token_value()
    TeepToken.objects.create(
        value=value,
        kind=TeepToken.Kind.UPDATE,
        device=device,
        numbering=numbering.name,
        expires_at=now + timedelta(seconds=settings.TEEP_TOKEN_LIFETIME_SECONDS),
    )
    return value


# --- Helpers ------------------------------------------------------------------------------------


def _sign_for_device(message, numbering: Numbering, alg: int) -> bytes:
    """All messages after the first use the agent's own cipher suite (TEEP 8.1)."""
    key = tam_keys().signing_key_for(alg)
    if key is None:  # the agent's key type is one the TAM must support; keep a safe default
        alg = ciphersuites.algorithm_of_suite(ciphersuites.TAM_OFFERED_SUITES[0])
        key = tam_keys().signing_key_for(alg)
    return cose.sign1(messages.encode(message, numbering), key, alg)


def _component_id_from_key(key: str) -> list[bytes]:
    from apps.teep.wire.component_ids import component_id_from_key

    return component_id_from_key(key)


def _short(text: str, limit: int) -> str:
    data = text.encode()[:limit]
    return data.decode("utf-8", errors="ignore") or "error"


def _check_source_rate(source_ip: str | None) -> None:
    if source_ip:
        retry_after = check_rate(f"src:{source_ip}", settings.TEEP_RATE_LIMIT_PER_SOURCE)
        if retry_after:
            raise TamRateLimited(retry_after, "source")


def _check_device_rate(kid: str) -> None:
    retry_after = check_rate(f"dev:{kid}", settings.TEEP_RATE_LIMIT_PER_DEVICE)
    if retry_after:
        raise TamRateLimited(retry_after, "device")
