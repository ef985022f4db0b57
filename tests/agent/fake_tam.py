"""A tiny TAM built from the wire package, to drive the agent without the real one."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import cbor2

from apps.teep.wire import ciphersuites, cose, messages
from apps.teep.wire.keys import TeepKey
from apps.teep.wire.numbering import CURRENT, Numbering
from apps.teep.wire.suit import build_envelope

COMPONENT = (b"TEEP-Device", b"SecureFS", bytes.fromhex("8d82573a926d4754935332dc29997f74"), b"ta")
MANIFEST_ID = COMPONENT[:-1] + (b"suit",)


@dataclass
class FakeTam:
    numbering: Numbering = CURRENT
    p256: TeepKey = field(default_factory=lambda: TeepKey.generate("p256"))
    ed25519: TeepKey = field(default_factory=lambda: TeepKey.generate("ed25519"))
    signer: TeepKey = field(default_factory=lambda: TeepKey.generate("p256"))

    @property
    def public_keys(self) -> list[TeepKey]:
        return [self.p256.public(), self.ed25519.public()]

    @staticmethod
    def token() -> bytes:
        return secrets.token_bytes(16)

    def key_for(self, alg: int) -> TeepKey:
        return self.p256 if alg in self.p256.algorithms else self.ed25519

    def query_request(
        self,
        *,
        token: bytes | None = None,
        bits: int = messages.TRUSTED_COMPONENTS,
        suites=ciphersuites.TAM_OFFERED_SUITES,
        versions=None,
        challenge=None,
        alg: int | None = None,
    ) -> bytes:
        """COSE_Sign with one signature per offered suite (TEEP 8.1), or COSE_Sign1 with `alg`."""
        if token is None and not bits & messages.ATTESTATION:
            token = self.token()
        request = messages.QueryRequest(
            token=token,
            challenge=challenge,
            versions=versions,
            supported_teep_cipher_suites=list(suites),
            supported_suit_cose_profiles=list(ciphersuites.TAM_SUIT_COSE_PROFILES),
            data_item_requested=bits,
        )
        payload = messages.encode(request, self.numbering)
        if alg is not None:
            return cose.sign1(payload, self.key_for(alg), alg)
        signers = []
        for suite in suites:
            suite_alg = ciphersuites.algorithm_of_suite(suite)
            signers.append((self.key_for(suite_alg), suite_alg))
        return cose.sign(payload, signers)

    def update(
        self,
        *,
        token=None,
        manifests=(),
        unneeded=(),
        err_code=None,
        err_msg=None,
        alg: int = -9,
        key: TeepKey | None = None,
    ) -> bytes:
        update = messages.Update(
            token=token,
            manifest_list=list(manifests) or None,
            unneeded_manifest_list=list(unneeded) or None,
            err_code=err_code,
            err_msg=err_msg,
        )
        return cose.sign1(messages.encode(update, self.numbering), key or self.key_for(alg), alg)

    def envelope(
        self,
        payload: bytes,
        *,
        sequence_number: int = 1,
        component=COMPONENT,
        uri: str | None = None,
        signing_key: TeepKey | None = None,
        manifest_component_id=MANIFEST_ID,
        vendor_id: bytes | None = None,
        class_id: bytes | None = None,
    ) -> bytes:
        return build_envelope(
            component_id=list(component),
            sequence_number=sequence_number,
            payload=payload,
            payload_uri=uri,
            signing_key=signing_key or self.p256,
            manifest_component_id=list(manifest_component_id) if manifest_component_id else None,
            vendor_id=vendor_id,
            class_id=class_id,
        )

    def open(self, body: bytes, agent_key: TeepKey):
        """Verify an agent's answer with its key and decode it."""
        return messages.decode(cose.verify(body, agent_key), self.numbering)


def unprotected_kid(body: bytes) -> bytes | None:
    return cose.parse(body).signatures[0].kid


def signed_alg(body: bytes) -> int | None:
    return cose.parse(body).signatures[0].alg


def cbor(value) -> bytes:
    return cbor2.dumps(value)
