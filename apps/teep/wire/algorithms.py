"""The four COSE signature algorithms TEEP uses, backed by `cryptography` and registered in pycose.

TEEP 8.1 makes ESP256 (-9) and Ed25519 (-19) mandatory for the TAM; agents written against
older drafts still sign with their polymorphic predecessors ES256 (-7) and EdDSA (-8), which
with a P-256 / Ed25519 key compute exactly the same thing (DESIGN.md "Cipher suites and agents
from older drafts"). pycose 1.1.0 knows neither -9 nor -19 and signs ES256 with the pure-Python
`ecdsa` package (ENGINEERING.md 2.0). Importing this module replaces pycose's registry entries
for -7 and -8 (looked up by identifier and by upper-case fullname, `_CoseAttribute.from_id`) and
adds -9 and -19, so pycose's Sign1Message / SignMessage / CoseSignature call the classes below.

Signatures are in COSE form (RFC 9053 2.1): ECDSA is the raw r || s, each 32 bytes big-endian,
not DER. `apps.teep.wire.cose` calls the plain functions below directly, on the `cryptography`
keys a TeepKey holds. The sign/verify classmethods take pycose keys (EC2Key / OKPKey), as pycose
passes them, convert them and delegate to the same functions: they serve pycose users (the
tests, scripts), not the TAM's own signing and verification.
"""

from typing import Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from pycose.algorithms import CoseAlgorithm
from pycose.keys.ec2 import EC2Key
from pycose.keys.okp import OKPKey

from apps.teep.wire.errors import CoseError

# COSE algorithm identifiers (IANA "COSE Algorithms"; RFC 9053 2.1; -9 / -19 are the fully
# specified ids of draft-ietf-jose-fully-specified-algorithms that TEEP 8.1 adopted in 2025).
ES256 = -7
EDDSA = -8
ESP256 = -9
ED25519 = -19

ECDSA_P256_ALGORITHMS = (ESP256, ES256)
ED25519_ALGORITHMS = (ED25519, EDDSA)
SIGNATURE_ALGORITHMS = ECDSA_P256_ALGORITHMS + ED25519_ALGORITHMS

ALGORITHM_NAMES = {ES256: "ES256", EDDSA: "EdDSA", ESP256: "ESP256", ED25519: "Ed25519"}

P256_COORDINATE_SIZE = 32
ECDSA_P256_SIGNATURE_SIZE = 2 * P256_COORDINATE_SIZE
ED25519_SIGNATURE_SIZE = 64

# pycose curve identifiers (COSE Elliptic Curves registry): P-256 = 1, Ed25519 = 6.
_COSE_CRV_P256 = 1
_COSE_CRV_ED25519 = 6

EcPrivate = ec.EllipticCurvePrivateKey
EcPublic = ec.EllipticCurvePublicKey
PrivateKey = Union[EcPrivate, Ed25519PrivateKey]
PublicKey = Union[EcPublic, Ed25519PublicKey]


def algorithm_name(alg: object) -> str:
    """Readable name of a COSE algorithm id, for error messages."""
    return f"{ALGORITHM_NAMES[alg]} ({alg})" if alg in ALGORITHM_NAMES else repr(alg)


# --- the math, on `cryptography` keys ------------------------------------------------------


_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


def ecdsa_p256_sign(private_key: EcPrivate, data: bytes) -> bytes:
    """ECDSA P-256 / SHA-256 signature in COSE form (r || s, RFC 9053 2.1)."""
    der = private_key.sign(data, _ECDSA_SHA256)
    r, s = decode_dss_signature(der)
    return r.to_bytes(P256_COORDINATE_SIZE, "big") + s.to_bytes(P256_COORDINATE_SIZE, "big")


def ecdsa_p256_verify(public_key: EcPublic, data: bytes, signature: bytes) -> bool:
    if not isinstance(signature, bytes) or len(signature) != ECDSA_P256_SIGNATURE_SIZE:
        return False
    r = int.from_bytes(signature[:P256_COORDINATE_SIZE], "big")
    s = int.from_bytes(signature[P256_COORDINATE_SIZE:], "big")
    try:
        public_key.verify(encode_dss_signature(r, s), data, _ECDSA_SHA256)
    except (InvalidSignature, ValueError):
        return False
    return True


def ed25519_sign(private_key: Ed25519PrivateKey, data: bytes) -> bytes:
    return private_key.sign(data)


def ed25519_verify(public_key: Ed25519PublicKey, data: bytes, signature: bytes) -> bool:
    if not isinstance(signature, bytes) or len(signature) != ED25519_SIGNATURE_SIZE:
        return False
    try:
        public_key.verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


# --- pycose keys -> cryptography keys --------------------------------------------------------


def _p256_public_from_pycose(key: object) -> EcPublic:
    if not isinstance(key, EC2Key) or key.crv is None or key.crv.identifier != _COSE_CRV_P256:
        raise CoseError("ECDSA P-256 algorithm needs an EC2 P-256 key")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + key.x + key.y)
    except (ValueError, TypeError) as exc:
        raise CoseError(f"invalid P-256 public key: {exc}") from None


def _p256_private_from_pycose(key: object) -> EcPrivate:
    _p256_public_from_pycose(key)  # same type checks
    if not key.d:
        raise CoseError("signing needs a private key")
    return ec.derive_private_key(int.from_bytes(key.d, "big"), ec.SECP256R1())


def _ed25519_public_from_pycose(key: object) -> Ed25519PublicKey:
    if not isinstance(key, OKPKey) or key.crv is None or key.crv.identifier != _COSE_CRV_ED25519:
        raise CoseError("Ed25519 algorithm needs an OKP Ed25519 key")
    try:
        return Ed25519PublicKey.from_public_bytes(key.x)
    except (ValueError, TypeError) as exc:
        raise CoseError(f"invalid Ed25519 public key: {exc}") from None


def _ed25519_private_from_pycose(key: object) -> Ed25519PrivateKey:
    _ed25519_public_from_pycose(key)
    if not key.d:
        raise CoseError("signing needs a private key")
    return Ed25519PrivateKey.from_private_bytes(key.d)


# --- the classes pycose calls ----------------------------------------------------------------


class _EcdsaP256(CoseAlgorithm):
    """ECDSA with SHA-256 on P-256, through OpenSSL rather than pycose's pure-Python `ecdsa`."""

    @classmethod
    def sign(cls, key: EC2Key, data: bytes) -> bytes:
        return ecdsa_p256_sign(_p256_private_from_pycose(key), data)

    @classmethod
    def verify(cls, key: EC2Key, data: bytes, signature: bytes) -> bool:
        return ecdsa_p256_verify(_p256_public_from_pycose(key), data, signature)


class _PureEd25519(CoseAlgorithm):
    """Ed25519 (RFC 8032); Ed448 is not a TEEP algorithm and is refused."""

    @classmethod
    def sign(cls, key: OKPKey, data: bytes) -> bytes:
        return ed25519_sign(_ed25519_private_from_pycose(key), data)

    @classmethod
    def verify(cls, key: OKPKey, data: bytes, signature: bytes) -> bool:
        return ed25519_verify(_ed25519_public_from_pycose(key), data, signature)


@CoseAlgorithm.register_attribute()
class Es256(_EcdsaP256):
    """ES256 (-7): polymorphic ECDSA w/ SHA-256, used with P-256 only (the pre-2025 TEEP suite)."""

    identifier = ES256
    fullname = "ES256"


@CoseAlgorithm.register_attribute()
class Esp256(_EcdsaP256):
    """ESP256 (-9): ECDSA using P-256 and SHA-256, fully specified (TEEP 8.1 cose-alg-esp256)."""

    identifier = ESP256
    fullname = "ESP256"


@CoseAlgorithm.register_attribute()
class EdDSA(_PureEd25519):
    """EdDSA (-8): polymorphic EdDSA, accepted with Ed25519 keys only (the pre-2025 TEEP suite)."""

    identifier = EDDSA
    fullname = "EDDSA"


@CoseAlgorithm.register_attribute()
class Ed25519(_PureEd25519):
    """Ed25519 (-19): EdDSA using the Ed25519 curve, fully specified (TEEP 8.1 cose-alg-ed25519)."""

    identifier = ED25519
    fullname = "ED25519"


ALGORITHM_CLASSES: dict[int, type[CoseAlgorithm]] = {
    cls.identifier: cls for cls in (Es256, Esp256, EdDSA, Ed25519)
}


def algorithm_class(alg: int) -> type[CoseAlgorithm]:
    """Our registered class for a TEEP signature algorithm; CoseError for any other id."""
    try:
        return ALGORITHM_CLASSES[alg]
    except (KeyError, TypeError):
        raise CoseError(f"unsupported signature algorithm {algorithm_name(alg)}") from None


def ensure_registered() -> None:
    """Re-assert our classes in pycose's registry (cheap; import already registered them).

    Guards against another module importing pycose's algorithms later and re-registering its
    own ES256/EdDSA classes (it cannot today: pycose registers once, at its own import).
    """
    registry = CoseAlgorithm.get_registered_classes()
    for cls in ALGORITHM_CLASSES.values():
        if registry.get(cls.identifier) is not cls or registry.get(cls.fullname.upper()) is not cls:
            CoseAlgorithm.register_attribute()(cls)
