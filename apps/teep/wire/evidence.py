"""Evidence for the product's simulated agent: an EAT the built-in Verifier accepts (plain Python;
the agent builds it, the built-in Verifier reads the same profile).

The media type names our own Evidence profile, never the TEEP one: per TEEP 7.1.1 a payload
labelled with the TEEP EAT profile (or unlabelled) is an Attestation Result.
"""

from __future__ import annotations

import hashlib
import time

import cbor2

from apps.teep.wire import eat
from apps.teep.wire.keys import TeepKey
from apps.teep.wire.suit.encryption import encrypt_cose_encrypt

EVIDENCE_PROFILE = "tag:tam-portal,2026:evidence"
EVIDENCE_MEDIA_TYPE = f'{eat.EAT_CWT_MEDIA_TYPE}; eat_profile="{EVIDENCE_PROFILE}"'
EAT_ENCRYPTION_CONTEXT = b"EAT Encryption"  # TEEP 8.2

# TEEP 5 / suit-report: manifests = [[content-type, SUIT_Reference]]; 60 (application/cbor) is the
# draft's placeholder until a content format for SUIT_Reference is allocated.
SUIT_REFERENCE_CONTENT_TYPE = 60


def suit_reference(manifest_uri: str, manifest_bytes: bytes) -> list:
    """One `manifests` entry: [60, [uri, [-16 (SHA-256), digest]]] (SUIT report SUIT_Reference)."""
    return [
        SUIT_REFERENCE_CONTENT_TYPE,
        [manifest_uri, [-16, hashlib.sha256(manifest_bytes).digest()]],
    ]


def measured_component(name: str, version: str, digest: bytes) -> list:
    """One `measurements` entry:
    [600, << {1: [name, [version, 1]], 2: [1 (sha-256), digest]} >>]."""
    body = {1: [name, [version, 1]], 2: [1, digest]}
    return [eat.MEASURED_COMPONENT_CONTENT_TYPE, cbor2.dumps(body, canonical=True)]


def make_evidence(
    *,
    attester_key: TeepKey,
    challenge: bytes,
    agent_public_key: TeepKey,
    ueid: bytes,
    oemid: bytes | int,
    hwmodel: bytes,
    hwversion: str,
    manifests: list | None = None,
    measurements: list | None = None,
    encrypt_to: TeepKey | None = None,
    alg: int | None = None,
    extra_claims: dict | None = None,
) -> tuple[bytes, str]:
    """(attestation-payload bytes, attestation-payload-format) for a QueryResponse.

    The EAT binds the agent's public key (cnf COSE_Key: first contact, TEEP 5) and the
    challenge (eat_nonce). `manifests` defaults to one SUIT_Reference naming the agent itself.
    With `encrypt_to` (the TAM's P-256 key) the signed EAT is wrapped in a COSE_Encrypt with
    "EAT Encryption" (TEEP 8.2); the media type stays that of the EAT inside.
    """
    if manifests is None:
        manifests = [
            suit_reference(
                "https://tam-portal.example/agent/manifest.suit", b"tam-portal simulated agent"
            )
        ]
    claims = {
        eat.EAT_NONCE: challenge,
        eat.UEID: ueid,
        eat.OEMID: oemid,
        eat.HWMODEL: hwmodel,
        eat.HWVERSION: [hwversion, 1],  # CoSWID version scheme 1: multipartnumeric
        eat.MANIFESTS: manifests,
        eat.CNF: {eat.CNF_COSE_KEY: agent_public_key.public().to_cose_key()},
        eat.EAT_PROFILE: EVIDENCE_PROFILE,
        eat.IAT: int(time.time()),
    }
    if measurements:
        claims[eat.MEASUREMENTS] = measurements
    if extra_claims:
        claims.update(extra_claims)
    payload = eat.build_eat(claims, attester_key, alg)
    if encrypt_to is not None:
        payload = encrypt_cose_encrypt(
            payload, encrypt_to.public(), context_other=EAT_ENCRYPTION_CONTEXT
        )
    return payload, EVIDENCE_MEDIA_TYPE
