"""Messages shaped like those of other TEEP implementations, built from ../shared/interop-vectors.

AttesTAM (and tamproto) put SUIT_Envelope_Tagged (107) inside manifest-list, use the pre-26
numbering and sign their Updates with ESP256 with the well-known TAM key c770ec53...
(interop-vectors/README.md). No AttesTAM Update is stored there, so `attestam_update` builds one
the way AttesTAM does, from its own keys and its own envelope (text.1.envelope.cbor, signed by
the TC developer key ca9e35f2...): nothing is re-signed but the Update itself, with AttesTAM's
own TAM key.
"""

from __future__ import annotations

import cbor2

from apps.teep.wire import cose
from apps.teep.wire.keys import TeepKey
from apps.teep.wire.numbering import PRE_26, Numbering
from tests.conftest import _shared_dir

INTEROP = _shared_dir() / "interop-vectors"
ATTESTAM = INTEROP / "AttesTAM" / "doc" / "examples"
TAMPROTO_ENVELOPE = INTEROP / "tamproto" / "TAs" / "integrated-payload-manifest.cbor"
# text.1.envelope.diag: component ['hello.txt'], integrated payload "#hello.txt".
ATTESTAM_COMPONENT = (b"hello.txt",)
ATTESTAM_PAYLOAD = b"Hello, Updated World!"
# The same envelope's vendor / class ids (UUID5 of "arm.com", manifest draft example 0).
ATTESTAM_VENDOR_ID = bytes.fromhex("fa6b4a53d5ad5fdfbe9de663e4d41ffe")
ATTESTAM_CLASS_ID = bytes.fromhex("1492af1425695e48bf429b2d51f2ab45")


def attestam_tam_key() -> TeepKey:
    """AttesTAM's TAM key (COSE_Key, alg -9): kid c770ec53..."""
    return TeepKey.from_cose_key((ATTESTAM / "tam_priv.cbor").read_bytes())


def tc_developer_key() -> TeepKey:
    """AttesTAM's TC developer key = the SUIT trust anchor ca9e35f2..."""
    return TeepKey.from_pem((ATTESTAM / "developer_priv.pem").read_bytes())


def attestam_envelope(*, tagged: bool = True) -> bytes:
    """AttesTAM's text.1 envelope; tagged (107) as AttesTAM puts it in manifest-list."""
    untagged = (ATTESTAM / "text.1.envelope.cbor").read_bytes()
    return cbor2.dumps(cbor2.CBORTag(107, None))[:-1] + untagged if tagged else untagged


def attestam_update(
    token: bytes, envelopes: list[bytes], *, numbering: Numbering = PRE_26, kid: bool = False
) -> bytes:
    """An Update as AttesTAM sends it: COSE_Sign1_Tagged, ESP256, no kid by default.

    Encoded here with cbor2, not with our codec: the codec refuses to encode a tagged envelope.
    """
    payload = cbor2.dumps(
        [
            numbering.message_type("update"),
            {numbering.label("token"): token, numbering.label("manifest-list"): envelopes},
        ]
    )
    key = attestam_tam_key()
    return cose.sign1(payload, key, -9, kid=key.kid if kid else None)
