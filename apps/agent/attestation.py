"""Evidence for the simulated TEEP Agent: an EAT signed by the device's attestation key.

The attestation key plays the role of the TEE's hardware root (an Attester, RFC 9334); the
TAM's Verifier trusts it through an endorsement an operator registered. The Evidence binds the
agent's TEEP key (cnf) and the TAM's challenge (eat_nonce); with `encrypt_to` it travels
encrypted to the TAM (TEEP 8.2, "EAT Encryption").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from apps.agent.agent import AttestationEvidence, AttestationRequest
from apps.agent.state import _write_atomic
from apps.teep.wire.evidence import make_evidence
from apps.teep.wire.keys import TeepKey

ATTESTER_KEY_FILE = "keys/attester.pem"


@dataclass
class EatEvidenceProvider:
    attester_key: TeepKey
    ueid: bytes
    oemid: bytes = b"\x00\x00\x00"
    hwmodel: bytes = b"tam-portal-simulated-tee"
    hwversion: str = "1.0"
    encrypt_to: TeepKey | None = None

    def __call__(self, request: AttestationRequest) -> AttestationEvidence:
        if request.challenge is None:
            raise ValueError("the QueryRequest carries no challenge to put in eat_nonce")
        payload, media_type = make_evidence(
            attester_key=self.attester_key,
            challenge=request.challenge,
            agent_public_key=request.agent_key,
            ueid=self.ueid,
            oemid=self.oemid,
            hwmodel=self.hwmodel,
            hwversion=self.hwversion,
            encrypt_to=self.encrypt_to,
        )
        return AttestationEvidence(payload=payload, media_type=media_type)


def load_or_create_attester(state_dir: Path | str) -> TeepKey:
    """The simulated TEE's attestation key, kept (mode 600) in the agent's state folder."""
    path = Path(state_dir) / ATTESTER_KEY_FILE
    if path.exists():
        return TeepKey.from_pem(path.read_bytes())
    key = TeepKey.generate("p256")
    _write_atomic(path, key.private_pem(), mode=0o600)
    _write_atomic(path.parent / "attester.pub.pem", key.public_pem())
    return key


def ueid_for(attester: TeepKey) -> bytes:
    """A stable RAND-type UEID (RFC 9711 4.2.1, type byte 0x01) derived from the attester."""
    return b"\x01" + attester.kid[:16]
