"""Keys generated at test time, a registered attester, and Evidence made the way the product's
simulated agent makes it (apps.attestation.evidence)."""

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from apps.attestation import services
from apps.teep.wire.evidence import make_evidence
from apps.teep.wire.keys import TeepKey

UEID = bytes.fromhex("0198f50a4ff6c05861c8860d13a638ea")
OEMID = bytes.fromhex("894823")
HWMODEL = bytes.fromhex("549dcecc8b987c737b44e40f7c635ce8")
HWVERSION = "1.3.4"

TEEP_WASM_DEMO = Path("teep-wasm-demo/testvectors")


@pytest.fixture
def interop_dir(shared_dir) -> Path:
    return shared_dir / "interop-vectors"


def jwk_key(path: Path) -> TeepKey:
    jwk = json.loads(path.read_text())
    b = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))  # noqa: E731
    point = b"\x04" + b(jwk["x"]) + b(jwk["y"])
    return TeepKey(ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point))


@dataclass
class World:
    attester: TeepKey
    agent: TeepKey
    attester_row: object

    def evidence(self, challenge: bytes, **overrides):
        fields = dict(
            attester_key=self.attester,
            challenge=challenge,
            agent_public_key=self.agent,
            ueid=UEID,
            oemid=OEMID,
            hwmodel=HWMODEL,
            hwversion=HWVERSION,
        )
        fields.update(overrides)
        return make_evidence(**fields)


@pytest.fixture
def world(db):
    attester = TeepKey.generate("p256")
    row = services.register_attestation_key(
        public_key_bytes=attester.public_pem(), name="test attester"
    )
    return World(attester=attester, agent=TeepKey.generate("p256"), attester_row=row)


@pytest.fixture
def challenge() -> bytes:
    return os.urandom(32)
