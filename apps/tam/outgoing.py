"""The messages the TAM sends: built and signed, with a minted token (apps/teep/tokens.py:
nothing stored) or a stored attestation challenge.

TEEP 4.2 (QueryRequest), 4.4 (Update), 8.1 (cipher suites: the first QueryRequest is a
COSE_Sign with one signature per offered algorithm; everything after it uses the agent's own
suite).
"""

from __future__ import annotations

from django.conf import settings

from apps.teep import tokens
from apps.teep.tam_keys import tam_keys
from apps.teep.wire import ciphersuites, cose, messages
from apps.teep.wire.numbering import Numbering

# What every QueryRequest asks for: the installed components and any SUIT reports (4.2).
DEFAULT_DATA_ITEMS = messages.TRUSTED_COMPONENTS | messages.SUIT_REPORTS


def query_request(numbering: Numbering, *, suites, now, attestation_payload=None,
                  attestation_payload_format=None) -> tuple[bytes, bytes]:
    """Build and sign a QueryRequest with a fresh token bound to no device (nothing is
    written). With several suites (nothing known of the agent) it is a COSE_Sign with a
    signature per algorithm; with one, a COSE_Sign1 (8.1). Returns (signed body, token)."""
    token = tokens.mint(tokens.Kind.QUERY_REQUEST, now=now, data_item_requested=DEFAULT_DATA_ITEMS)
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
    return body, token


def challenge_request(numbering: Numbering, alg: int, device, *, now) -> tuple[bytes, bytes]:
    """QueryRequest with a 32-byte challenge, the attestation bit and no token (TEEP 4.2),
    signed with the agent's own suite; the challenge is stored like a token, single use."""
    challenge = tokens.new_value(tokens.CHALLENGE_BYTES)
    bits = messages.ATTESTATION | DEFAULT_DATA_ITEMS
    request = messages.QueryRequest(
        challenge=challenge,
        versions=ciphersuites.SUPPORTED_VERSIONS,
        supported_teep_cipher_suites=(ciphersuites.suite_for_algorithm(alg),),
        supported_suit_cose_profiles=ciphersuites.TAM_SUIT_COSE_PROFILES,
        data_item_requested=bits,
    )
    body = cose.sign1(messages.encode(request, numbering), tam_keys().signing_key_for(alg), alg)
    tokens.issue_challenge(numbering=numbering.name, now=now, device=device, value=challenge,
                           data_item_requested=bits)
    return body, challenge


def update(device, numbering: Numbering, alg: int, *, now, manifest_list=None, unneeded_manifest_list=None,
           err_code: int | None = None, err_msg: str | None = None):
    """Build and sign an Update with a fresh token naming the device (nothing is written).
    Returns (signed body, token)."""
    token = tokens.mint(tokens.Kind.UPDATE, now=now, device_id=getattr(device, "pk", device))
    message = messages.Update(
        token=token,
        manifest_list=manifest_list or None,
        unneeded_manifest_list=unneeded_manifest_list or None,
        err_code=err_code,
        err_msg=short(err_msg, 128) if err_msg is not None else None,
    )
    return sign_for_agent(message, numbering, alg), token


def sign_for_agent(message, numbering: Numbering, alg: int) -> bytes:
    """All messages after the first use the agent's own cipher suite (TEEP 8.1)."""
    key = tam_keys().signing_key_for(alg)
    if key is None:  # the agent's key type is one the TAM must support; keep a safe default
        alg = ciphersuites.algorithm_of_suite(ciphersuites.TAM_OFFERED_SUITES[0])
        key = tam_keys().signing_key_for(alg)
    return cose.sign1(messages.encode(message, numbering), key, alg)


def tam_attestation_query_request(numbering: Numbering, *, now) -> bytes | None:
    """TEEP 7.1.2: an agent that requires attesting the TAM gets a QueryRequest carrying the
    TAM's attestation payload, when the operator configured one (TAM_ATTESTATION_PAYLOAD_FILE)."""
    if not settings.TAM_ATTESTATION_PAYLOAD_FILE:
        return None
    with open(settings.TAM_ATTESTATION_PAYLOAD_FILE, "rb") as handle:
        payload = handle.read()
    body, _ = query_request(
        numbering, suites=ciphersuites.TAM_OFFERED_SUITES, now=now, attestation_payload=payload,
        attestation_payload_format=settings.TAM_ATTESTATION_PAYLOAD_FORMAT or None,
    )
    return body


def short(text: str, limit: int) -> str:
    """err-msg / msg: at most `limit` bytes of UTF-8 (TEEP 4.5, 4.6)."""
    data = text.encode()[:limit]
    return data.decode("utf-8", errors="ignore") or "error"
