"""The TAM state machine: the bytes of one incoming TEEP message (or none) in, the bytes to
send (or none) out. No HTTP here (apps/tam/views.py maps answers to status codes).

TEEP references: 4.1.2 validation, 4.2 QueryRequest, 7.1 TAM behaviour (token handling),
7.1.1 handling a QueryResponse, 7.1.2 handling Success and Error, 8.1 cipher suites.
DESIGN.md: "TEEP over HTTP: the answers we give", "Freshness and sessions".

Layers: this engine sits above the domain apps (devices, policies, attestation, ...), which it
calls through their services, and the wire package (apps/teep/wire) below them.

Reconciliation is level-triggered: a validly signed QueryResponse is the truth about what the
device holds. It settles every Update issued before the QueryRequest it answers (applied =
succeeded, not = lost), and then the desired state is computed afresh, so nothing lost in an
earlier session (an Update, a Success, an Error) holds back what is due now. A Success or
Error changes state only when it answers a token the TAM issued to that device, and the first
validly signed answer consumes the token whatever happens next.

Every state change for a device happens in one transaction holding that device's row lock;
a message that cannot be authenticated or parsed changes nothing and is dropped with an
audit entry saying why.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.devices import services as device_services
from apps.devices import snapshot
from apps.devices.models import Device
from apps.policies import world as worlds
from apps.tam import bootstrap, compat, identify, outgoing
from apps.tam.exchange import Exchange, TamAnswer, TamRateLimited, TamUnavailable  # noqa: F401 (re-exported)
from apps.tam.outgoing import DEFAULT_DATA_ITEMS  # noqa: F401 (re-exported)
from apps.tam.ratelimit import check_rate
from apps.teep import tokens
from apps.teep.tam_keys import tam_keys
from apps.teep.wire import ciphersuites, cose, messages
from apps.teep.wire.component_ids import component_id_from_key
from apps.teep.wire.errors import CoseError, SuitError, TeepDecodeError
from apps.teep.wire.numbering import Numbering
from apps.teep.wire.suit import parse_report

logger = logging.getLogger(__name__)


# --- ProcessConnect: an empty POST --------------------------------------------------------------


def process_connect(*, numbering: Numbering, source_ip: str | None = None, endpoint: str | None = None) -> TamAnswer:
    """Answer an agent that starts a session with a QueryRequest (TEEP 7.1, 8.1).

    The TAM cannot know who sent an empty POST, so the QueryRequest is a COSE_Sign with one
    signature per offered algorithm (TEEP 8.1), unless the endpoint's compatibility profile
    names one suite (apps/tam/compat.py: a COSE_Sign1). Its token (minted, apps/teep/tokens.py)
    names no device. Nothing is written but the audit row."""
    exchange = Exchange(numbering, source_ip, 0)
    _check_source_rate(source_ip)
    suite_name = compat.first_query_suite_name(endpoint)
    if suite_name != compat.DEFAULT_FIRST_QUERY_SUITE:
        exchange.detail["first_query_suite"] = suite_name
    body, token = outgoing.query_request(numbering, suites=compat.FIRST_QUERY_SUITES[suite_name], now=timezone.now())
    exchange.detail["token"] = tokens.reference(token)
    return exchange.answer(body, "query-request", message_type="query-request")


# --- ProcessTeepMessage ---------------------------------------------------------------------


def process_teep_message(body: bytes, *, numbering: Numbering, source_ip: str | None = None) -> TamAnswer:
    """One incoming message, in one transaction that holds the device's row lock from the
    first read (apps/devices/snapshot.py) to the audit row. A key the TAM does not know or
    does not trust (yet) goes to the attestation bootstrap, outside that transaction."""
    exchange = Exchange(numbering, source_ip, len(body))
    _check_source_rate(source_ip)

    # 4.1.2 steps 1-2: a COSE_Sign1 or COSE_Sign structure.
    try:
        signed = cose.parse(body)
    except CoseError as exc:
        return exchange.drop(f"not a COSE_Sign1/COSE_Sign message: {exc}")
    with transaction.atomic():
        signature = signed.signatures[0]
        try:
            snap = _lock_device(signed, numbering)
        except identify.KidlessRefused as exc:
            return exchange.drop(str(exc))
        if snap is not None and not signature.kid:
            exchange.detail["kid"] = "absent"
        exchange.device_kid = snap.device.kid if snap else (signature.kid.hex() if signature.kid else "")
        if exchange.device_kid:
            _check_device_rate(exchange.device_kid)
        if snap is not None and snap.device.state == Device.State.RETIRED:
            return exchange.drop("device is retired")
        if snap is not None and bootstrap.is_trusted(snap):
            return _trusted_message(exchange, signed, snap)
    device = snap.device if snap is not None else None
    return bootstrap.bootstrap(exchange, signed, device, continue_with=_continue_after_attestation)


def _lock_device(signed, numbering: Numbering):
    """The snapshot of the device whose key signed this, its row locked: by kid (one
    statement); for agents that send no kid (DESIGN.md: older drafts), the device
    apps/tam/identify.py finds (an Update token naming it, or the one kid-less device whose
    key verifies the signature). KidlessRefused: see identify."""
    kids = [signature.kid.hex() for signature in signed.signatures if signature.kid]
    if kids:
        for kid in kids:
            snap = snapshot.lock_by_kid(kid)
            if snap is not None:
                return snap
        return None
    device_id = identify.find_kidless_device_id(signed, numbering)
    return snapshot.lock_by_id(device_id) if device_id is not None else None


def _trusted_message(exchange, signed, snap) -> TamAnswer:
    device = snap.device
    # 4.1.2 step 4: the signature, with the key registered for this agent.
    agent_key = device_services.device_public_key(device)
    try:
        payload = cose.verify(signed, agent_key)
    except CoseError as exc:
        return exchange.drop(f"signature does not verify with the agent's key: {exc}")
    signing_alg = bootstrap.signing_alg(signed, agent_key)

    # 4.1.2 step 5: the TEEP message itself.
    try:
        message = messages.decode(payload, exchange.numbering)
    except TeepDecodeError as exc:
        return exchange.drop(f"invalid TEEP message: {exc}")
    exchange.type_in = messages.message_type_name(message)
    if getattr(message, "ignored_labels", ()):
        exchange.detail["ignored_labels"] = list(message.ignored_labels)

    if isinstance(message, messages.QueryResponse):
        return _handle_query_response(exchange, snap, message, signing_alg)
    if isinstance(message, messages.Success):
        return _handle_success(exchange, snap, message)
    if isinstance(message, messages.Error):
        return _handle_error(exchange, snap, message)
    return exchange.drop(f"a TEEP Agent does not send {exchange.type_in} messages")


def _continue_after_attestation(exchange, device, message, signing_alg, *, answered) -> TamAnswer:
    """The bootstrap trusted the key: its QueryResponse goes on to policy."""
    with transaction.atomic():
        snap = snapshot.lock_by_id(device.pk)
        return _handle_query_response(exchange, snap, message, signing_alg, answered=answered)


# --- QueryResponse (TEEP 7.1.1) ---------------------------------------------------------------


def _handle_query_response(exchange, snap, message, signing_alg, *, answered=None) -> TamAnswer:
    """`answered`: the (already consumed) challenge when this QueryResponse answered an
    attestation QueryRequest, which carries no token (TEEP 4.2)."""
    now = timezone.now()
    numbering = exchange.numbering
    device = snap.device
    if message.token is None and answered is None:
        return exchange.drop("QueryResponse without a token to a QueryRequest that had one")
    if message.token is not None:
        exchange.detail["token"] = tokens.reference(message.token)
    reports, report_problem = _parse_reports(message.suit_reports, message.token, device, exchange)
    token = answered or tokens.claim(message.token, device=device, kinds=(tokens.Kind.QUERY_REQUEST,), now=now,
                                     numbering=numbering.name)
    if token is None:
        return exchange.drop("unknown, expired or already used token")
    problems = _missing_items(token.data_item_requested, message)
    if report_problem:
        problems.append(report_problem)
    if problems:
        # 7.1.1: drop what it said, and answer an Update carrying err-code and err-msg.
        body, _ = outgoing.update(device, numbering, signing_alg, now=now,
                                  err_code=numbering.err_code("ERR_PERMANENT_ERROR"),
                                  err_msg="; ".join(problems))
        exchange.detail["problems"] = problems
        return exchange.answer(body, "update", "; ".join(problems), message_type="update")

    if device_services.is_stale_report(device, token.issued_at):
        return exchange.drop("stale QueryResponse: it answers a QueryRequest older than the TAM's newest "
                             "news of this device (delayed on the way); token consumed, nothing recorded")
    reported = {
        "tc_list": message.tc_list,
        "requested_tc_list": message.requested_tc_list,
        "unneeded_manifest_list": message.unneeded_manifest_list,
        "ext_list": message.ext_list,
        "selected_version": message.selected_version,
        "signing_alg": signing_alg,
        "numbering": numbering.name,
    }
    digest = device_services.reported_digest(**reported, reports=reports)
    if _nothing_changed(snap, digest):
        # The fast path: the device says what it said when nothing was due, and nothing that
        # decides what is due changed since (policy epoch), nothing is in flight.
        device.state_as_of = token.issued_at
        exchange.detail["fast_path"] = True
        return exchange.answer(None, "nothing-due", along_with=device_services.contact_statement(snap, now))

    world = worlds.for_epoch(snap.epoch)
    device_services.record_reported_state(snap, world, **reported, as_of=token.issued_at)
    # Level-triggered: what the device now reports settles every earlier Update.
    succeeded, lost = device_services.reconcile_deliveries(snap, world, issued_before=token.issued_at, now=now)
    if succeeded or lost:
        exchange.detail["reconciled"] = {"succeeded": [_item_ref(i) for i in succeeded],
                                         "lost": [_item_ref(i) for i in lost]}
    device_services.store_suit_reports(device, "query-response", reports)
    plan = device_services.compute_due(snap, world, now=now)
    settled = plan.settled and digest and snap.epoch is not None
    device.reconciled_digest, device.reconciled_epoch = (digest, snap.epoch) if settled else ("", None)
    if not plan:
        return exchange.answer(None, "nothing-due", along_with=device_services.contact_statement(snap, now))
    body, update_token = outgoing.update(
        device, numbering, signing_alg, now=now,
        manifest_list=plan.manifest_list,
        unneeded_manifest_list=[component_id_from_key(manifest_key) for _, manifest_key, _, _ in plan.removals],
    )
    items = device_services.record_deliveries(device, update_token, plan, expires_at=now + tokens.lifetime())
    exchange.detail["deliveries"] = [_item_ref(i) for i in items]
    return exchange.answer(body, "update", message_type="update",
                           along_with=device_services.contact_statement(snap, now))


def _nothing_changed(snap, digest: str) -> bool:
    device = snap.device
    return bool(digest) and snap.epoch is not None and device.reconciled_epoch == snap.epoch \
        and device.reconciled_digest == digest \
        and not snap.unsettled and not snap.open_actions and not snap.personalization_pending


def _item_ref(item) -> dict:
    return {"kind": item.kind, "component": item.component_key, "version": item.version_id}


def _missing_items(requested_bits: int, message) -> list[str]:
    problems = []
    if requested_bits & messages.TRUSTED_COMPONENTS and message.tc_list is None:
        problems.append("tc-list is missing but trusted-components was requested")
    if requested_bits & messages.EXTENSIONS and message.ext_list is None:
        problems.append("ext-list is missing but extensions was requested")
    if requested_bits & messages.ATTESTATION and message.attestation_payload is None:
        problems.append("attestation-payload is missing but attestation was requested")
    return problems


def _parse_reports(raw_reports, token: bytes | None, device, exchange=None) -> tuple[list, str]:
    """Parse SUIT reports; each must carry the token as its nonce (4.3, 4.5, 4.6, 7.1.1).
    One signed with the agent's TEEP key is accepted when that key verifies it (compat.py)."""
    parsed, teep_key_signed = [], []
    # TEEP 8.2: reports may be encrypted to the TAM (ES-DH, "SUIT Report Encryption").
    decrypt_key = tam_keys().signing_key_for(-9) if raw_reports else None
    agent_key = device_services.device_public_key(device) if raw_reports else None
    for index, raw in enumerate(raw_reports or []):
        try:
            result = parse_report(raw, decrypt_key=decrypt_key)
        except SuitError as exc:
            return [], f"suit-reports[{index}] cannot be parsed: {exc}"
        if token is not None and result.report.nonce != token:
            return [], f"suit-reports[{index}] nonce does not match the token"
        try:
            result = compat.report_signed_with_teep_key(raw, result, agent_key)
        except SuitError as exc:
            return [], f"suit-reports[{index}] {exc}"
        if result.verified_by is not None:
            teep_key_signed.append(index)
        parsed.append((raw, result))
    if teep_key_signed and exchange is not None:
        exchange.detail["suit_reports_signed_with_teep_key"] = teep_key_signed
    return parsed, ""


# --- Success and Error (TEEP 7.1.2) -----------------------------------------------------------


def _handle_success(exchange, snap, message) -> TamAnswer:
    now = timezone.now()
    device = snap.device
    if message.token is None:
        return exchange.drop("Success without a token: the TAM always sends one in an Update")
    exchange.detail["token"] = tokens.reference(message.token)
    reports, problem = _parse_reports(message.suit_reports, message.token, device, exchange)
    # The first validly signed answer consumes the token, even one dropped just below.
    token = tokens.claim(message.token, device=device, kinds=(tokens.Kind.UPDATE,), now=now,
                         numbering=exchange.numbering.name)
    if token is None:
        return exchange.drop("unknown, expired or already used token")
    if problem:
        return exchange.drop(f"{problem}; token consumed, the device's next report settles the Update")
    items = device_services.settle_success(snap, worlds.for_epoch(snap.epoch), token.value, now=now)
    device_services.store_suit_reports(device, "success", reports)
    device.reconciled_digest, device.reconciled_epoch = "", None
    exchange.detail["settled"] = [_item_ref(i) for i in items]
    return exchange.answer(None, "nothing-due", message.msg or "",
                           along_with=device_services.contact_statement(snap, now))


def _handle_error(exchange, snap, message) -> TamAnswer:
    now = timezone.now()
    numbering = exchange.numbering
    device = snap.device
    name = numbering.err_code_names.get(message.err_code, f"unknown error {message.err_code}")
    exchange.detail.update(err_code=message.err_code, err_name=name, err_msg=message.err_msg or "")
    if message.token is None:
        # It answers nothing the TAM asked (every QueryRequest but a challenge, and every
        # Update, carries a token): it may not hold back or settle anything.
        return exchange.drop(f"Error ({name}) without a token: it answers no request of the TAM; nothing changed")
    exchange.detail["token"] = tokens.reference(message.token)
    reports, problem = _parse_reports(message.suit_reports, message.token, device, exchange)
    token = tokens.claim(message.token, device=device, kinds=(tokens.Kind.UPDATE, tokens.Kind.QUERY_REQUEST),
                         now=now, numbering=numbering.name)
    if token is None:
        return exchange.drop("unknown, expired or already used token")
    if problem:
        return exchange.drop(f"{problem}; token consumed, the device's next report settles the Update")
    device_services.record_agent_error(
        device,
        code=message.err_code,
        name=name,
        message=message.err_msg,
        cipher_suites=message.supported_teep_cipher_suites,
        versions=message.versions,
        now=now,
    )
    if token.kind == tokens.Kind.UPDATE:
        failed = {
            result.report.manifest_digest.value.hex(): f"{name}: {device_services.summarize_report(result)}"
            for _, result in reports
            if not result.report.success
        }
        device_services.settle_failure(
            snap,
            worlds.for_epoch(snap.epoch),
            token.value,
            reason=f"{name}: {message.err_msg or 'no message'}",
            retryable=name == "ERR_TEMPORARY_ERROR",
            failed_digests=failed,
            now=now,
        )
    device_services.store_suit_reports(device, "error", reports)
    device.reconciled_digest, device.reconciled_epoch = "", None
    contact = device_services.contact_statement(snap, now)
    # 4.6: every reaction is bookkeeping or a retry; nothing destructive happens by itself.
    retry = _retry_after_error(name, message, numbering, now)
    if retry is not None:
        body, why = retry
        return exchange.answer(body, "query-request", why, message_type="query-request", along_with=contact)
    return exchange.answer(None, "nothing-due", f"agent reported {name}", along_with=contact)


def _retry_after_error(name: str, message, numbering: Numbering, now):
    """The retries TEEP 4.6 and 7.1.2 recommend, as (signed QueryRequest, reason) or None."""
    if name == "ERR_UNSUPPORTED_CIPHER_SUITES" and message.supported_teep_cipher_suites:
        # 4.6: "retry the request using a different set of supported cipher suites": one we
        # accept from older drafts (ES256, EdDSA) may be in the agent's list.
        suite = ciphersuites.select_cipher_suite(message.supported_teep_cipher_suites,
                                                 ciphersuites.TAM_ACCEPTED_SUITES)
        if suite is not None and suite not in ciphersuites.TAM_OFFERED_SUITES:
            body, _ = outgoing.query_request(numbering, suites=[suite], now=now)
            return body, f"retrying with cipher suite {ciphersuites.suite_to_wire(suite)}"
        return None
    if name == "ERR_ATTESTATION_REQUIRED":
        # 7.1.2: the agent wants to attest the TAM; the TAM MUST answer a QueryRequest with an
        # attestation-payload. It can only if the operator configured one for this TAM.
        body = outgoing.tam_attestation_query_request(numbering, now=now)
        if body is None:
            logger.warning("agent requires TAM attestation but TAM_ATTESTATION_PAYLOAD_FILE is not set")
            return None
        return body, "answering with the TAM's attestation payload"
    return None


# --- Rate limits -----------------------------------------------------------------------------------


def _check_source_rate(source_ip: str | None) -> None:
    if source_ip:
        retry_after = check_rate(f"src:{source_ip}", settings.TEEP_RATE_LIMIT_PER_SOURCE)
        if retry_after:
            raise TamRateLimited(retry_after, "source")


def _check_device_rate(kid: str) -> None:
    retry_after = check_rate(f"dev:{kid}", settings.TEEP_RATE_LIMIT_PER_DEVICE)
    if retry_after:
        raise TamRateLimited(retry_after, "device")
