"""TEEP signing keys: P-256 (ESP256 / ES256) and Ed25519 (Ed25519 / EdDSA), with RFC 9679 key ids.

TEEP 5 and 7.1.1.1: an Agent key is identified by its COSE Key Thumbprint (RFC 9679), a SHA-256
hash (-16, the digest of every SUIT COSE profile) over the deterministic CBOR (RFC 8949 4.2.1)
of the required COSE_Key members only. The same value is the `kid` the TAM and the agents put
in their COSE headers (see ../interop-vectors: TAM key c770ec53..., agent key d08d1602...).
"""

import base64
import binascii
import hashlib
import io
import re
from typing import Any, Literal, Mapping, Union

import cbor2
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from apps.teep.wire import algorithms
from apps.teep.wire.errors import CoseError

KeyKind = Literal["p256", "ed25519"]

# COSE_Key labels and values (RFC 9052 7.1, RFC 9053 7.1-7.2).
KTY = 1
KID = 2
ALG = 3
CRV = -1
X = -2
Y = -3
D = -4
KTY_OKP = 1
KTY_EC2 = 2
CRV_P256 = 1
CRV_ED25519 = 6

_COORDINATE_SIZE = 32  # P-256 coordinates and scalar, Ed25519 public and private keys
_MAX_KEY_INPUT = 16 * 1024
_COSE_KEY_MAX_DEPTH = 8
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.S)


class TeepKey:
    """A P-256 or Ed25519 key, private (can sign) or public (can verify).

    Immutable; compares equal when kind, public key and privateness are equal. repr() never
    shows private material.
    """

    __slots__ = ("_kind", "_private", "_public", "_thumbprint")

    def __init__(self, key: Union[algorithms.PrivateKey, algorithms.PublicKey]):
        if isinstance(key, ec.EllipticCurvePrivateKey):
            self._kind, self._private, self._public = "p256", key, key.public_key()
        elif isinstance(key, ec.EllipticCurvePublicKey):
            self._kind, self._private, self._public = "p256", None, key
        elif isinstance(key, Ed25519PrivateKey):
            self._kind, self._private, self._public = "ed25519", key, key.public_key()
        elif isinstance(key, Ed25519PublicKey):
            self._kind, self._private, self._public = "ed25519", None, key
        else:
            raise CoseError(
                f"unsupported key type {type(key).__name__}: TEEP keys are P-256 or Ed25519"
            )
        if self._kind == "p256" and not isinstance(self._public.curve, ec.SECP256R1):
            curve = self._public.curve.name
            raise CoseError(f"unsupported elliptic curve {curve}: TEEP uses P-256")
        self._thumbprint: bytes | None = None

    # --- construction --------------------------------------------------------------------

    @classmethod
    def generate(cls, kind: KeyKind = "p256") -> "TeepKey":
        if kind == "p256":
            return cls(ec.generate_private_key(ec.SECP256R1()))
        if kind == "ed25519":
            return cls(Ed25519PrivateKey.generate())
        raise CoseError(f"unknown key kind {kind!r}: expected 'p256' or 'ed25519'")

    @classmethod
    def from_pem(cls, data: Union[bytes, str]) -> "TeepKey":
        """A private (PKCS#8 or SEC1) or public (SubjectPublicKeyInfo) key in PEM.

        Read block by block as DER, so that what OpenSSL accepts is accepted too: libcsuit's
        trust_anchor_secp256r1.pem has an "EC PARAMETERS" block first and a PKCS#8 body under
        an "EC PRIVATE KEY" label. Encrypted keys are refused.
        """
        if isinstance(data, str):
            data = data.encode("ascii", "replace")
        if not isinstance(data, (bytes, bytearray)):
            raise CoseError("PEM key must be bytes or text")
        for label, body in _PEM_BLOCK.findall(bytes(data)):
            if label == b"ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in body:
                raise CoseError("encrypted PEM private keys are not supported")
            if not (label.endswith(b"PRIVATE KEY") or label == b"PUBLIC KEY"):
                continue  # e.g. EC PARAMETERS
            try:
                der = base64.b64decode(b"".join(body.split()), validate=True)
                if label == b"PUBLIC KEY":
                    key = serialization.load_der_public_key(der)
                else:
                    key = serialization.load_der_private_key(der, password=None)
            except (ValueError, TypeError, UnsupportedAlgorithm, binascii.Error) as exc:
                raise CoseError(f"cannot read PEM {label.decode()}: {exc}") from None
            return cls(key)
        raise CoseError("no PEM private or public key block found")

    @classmethod
    def from_cose_key(cls, data: Union[bytes, Mapping[Any, Any]]) -> "TeepKey":
        """A COSE_Key (RFC 9052 7), as CBOR bytes or an already decoded map.

        EC2 needs crv 1 (P-256), x and y; OKP needs crv 6 (Ed25519) and x; d makes it private and
        must match the public part. The optional kid (2) and alg (3) members are not kept: our
        kid is always the RFC 9679 thumbprint, and the usable algorithms follow from the key type.
        """
        if isinstance(data, (bytes, bytearray, memoryview)):
            cose_key = _decode_cbor_map(bytes(data))
        elif isinstance(data, Mapping):
            cose_key = data
        else:
            raise CoseError("COSE_Key must be CBOR bytes or a map")

        kty = cose_key.get(KTY)
        crv = cose_key.get(CRV)
        if kty == KTY_EC2 and type(kty) is int:
            if crv != CRV_P256 or type(crv) is not int:
                raise CoseError(f"unsupported EC2 curve {crv!r}: TEEP uses P-256 (crv 1)")
            x = _coordinate(cose_key, X, "x")
            y = _coordinate(cose_key, Y, "y")
            try:
                public = ec.EllipticCurvePublicKey.from_encoded_point(
                    ec.SECP256R1(), b"\x04" + x + y
                )
            except ValueError:
                raise CoseError("COSE_Key x/y is not a point on P-256") from None
            if D not in cose_key:
                return cls(public)
            d = _coordinate(cose_key, D, "d")
            try:
                private = ec.derive_private_key(int.from_bytes(d, "big"), ec.SECP256R1())
            except ValueError:
                raise CoseError("COSE_Key d is not a valid P-256 private key") from None
            if _raw_public(private.public_key()) != _raw_public(public):
                raise CoseError("COSE_Key d does not match x/y")
            return cls(private)
        if kty == KTY_OKP and type(kty) is int:
            if crv != CRV_ED25519 or type(crv) is not int:
                raise CoseError(f"unsupported OKP curve {crv!r}: TEEP uses Ed25519 (crv 6)")
            x = _coordinate(cose_key, X, "x")
            try:
                public = Ed25519PublicKey.from_public_bytes(x)
            except ValueError:
                raise CoseError("COSE_Key x is not an Ed25519 public key") from None
            if D not in cose_key:
                return cls(public)
            private = Ed25519PrivateKey.from_private_bytes(_coordinate(cose_key, D, "d"))
            if _raw_public(private.public_key()) != x:
                raise CoseError("COSE_Key d does not match x")
            return cls(private)
        raise CoseError(f"unsupported COSE_Key kty {kty!r}: expected 2 (EC2) or 1 (OKP)")

    # --- export ------------------------------------------------------------------------------

    def to_cose_key(self, private: bool = False) -> dict[int, Any]:
        """COSE_Key map with kty, crv, x (, y) and, if `private`, d. No kid or alg member."""
        if private and self._private is None:
            raise CoseError("this is a public key: no private COSE_Key to export")
        cose_key = self._required_members()
        if private:
            if self._kind == "p256":
                d = self._private.private_numbers().private_value.to_bytes(_COORDINATE_SIZE, "big")
            else:
                d = self._private.private_bytes(
                    serialization.Encoding.Raw,
                    serialization.PrivateFormat.Raw,
                    serialization.NoEncryption(),
                )
            cose_key[D] = d
        return cose_key

    def public_pem(self) -> bytes:
        return self._public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def private_pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM; protecting it at rest is the caller's job (DESIGN.md "Keys")."""
        if self._private is None:
            raise CoseError("this is a public key: no private PEM to export")
        return self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    # --- properties --------------------------------------------------------------------------

    @property
    def kind(self) -> KeyKind:
        return self._kind

    @property
    def is_private(self) -> bool:
        return self._private is not None

    def public(self) -> "TeepKey":
        return self if self._private is None else TeepKey(self._public)

    @property
    def private_key(self) -> algorithms.PrivateKey:
        """The `cryptography` private key; CoseError for a public TeepKey."""
        if self._private is None:
            raise CoseError("signing needs a private key")
        return self._private

    @property
    def public_key(self) -> algorithms.PublicKey:
        return self._public

    @property
    def algorithms(self) -> tuple[int, ...]:
        """COSE algorithms this key signs and verifies with, the TEEP 8.1 one first."""
        if self._kind == "p256":
            return algorithms.ECDSA_P256_ALGORITHMS
        return algorithms.ED25519_ALGORITHMS

    @property
    def default_algorithm(self) -> int:
        """ESP256 (-9) or Ed25519 (-19): the algorithms of TEEP 8.1's mandatory cipher suites."""
        return self.algorithms[0]

    def thumbprint(self) -> bytes:
        """RFC 9679 thumbprint: SHA-256 over the deterministic CBOR of the required members."""
        if self._thumbprint is None:
            encoded = cbor2.dumps(self._required_members(), canonical=True)
            self._thumbprint = hashlib.sha256(encoded).digest()
        return self._thumbprint

    @property
    def kid(self) -> bytes:
        """The key id TEEP uses (TEEP 5): the RFC 9679 thumbprint."""
        return self.thumbprint()

    # --- internals ---------------------------------------------------------------------------

    def _required_members(self) -> dict[int, Any]:
        # RFC 9679 Section 4: EC2 {1, -1, -2, -3}, OKP {1, -1, -2}.
        if self._kind == "p256":
            raw = _raw_public(self._public)
            x, y = raw[:_COORDINATE_SIZE], raw[_COORDINATE_SIZE:]
            return {KTY: KTY_EC2, CRV: CRV_P256, X: x, Y: y}
        return {KTY: KTY_OKP, CRV: CRV_ED25519, X: _raw_public(self._public)}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TeepKey):
            return NotImplemented
        return (self._kind, self.is_private, _raw_public(self._public)) == (
            other._kind,
            other.is_private,
            _raw_public(other._public),
        )

    def __hash__(self) -> int:
        return hash((self._kind, self.is_private, _raw_public(self._public)))

    def __repr__(self) -> str:
        which = "private" if self.is_private else "public"
        return f"<TeepKey {self._kind} {which} kid={self.kid.hex()[:16]}...>"


def load_public_key(data: Union[bytes, str]) -> TeepKey:
    """The public key in `data`: PEM (public or private), COSE_Key CBOR, or COSE_Key as hex text.

    Private material in the input is dropped: the result is always a public TeepKey.
    """
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CoseError("key data must be bytes or text")
    data = bytes(data)
    if len(data) > _MAX_KEY_INPUT:
        raise CoseError("key data too large")
    stripped = data.strip()
    if b"-----BEGIN" in stripped:
        return TeepKey.from_pem(stripped).public()
    if stripped and all(c in b"0123456789abcdefABCDEF \t\r\n" for c in stripped):
        try:
            decoded = binascii.unhexlify(b"".join(stripped.split()))
        except (binascii.Error, ValueError):
            decoded = None
        if decoded is not None:
            try:
                return TeepKey.from_cose_key(decoded).public()
            except CoseError:
                pass  # maybe binary COSE_Key bytes that happen to be hex digits; try below
    try:
        return TeepKey.from_cose_key(data).public()
    except CoseError as exc:
        raise CoseError(f"not a PEM key, a COSE_Key or a hex COSE_Key: {exc}") from None


def _decode_cbor_map(data: bytes) -> Mapping[Any, Any]:
    if len(data) > _MAX_KEY_INPUT:
        raise CoseError("COSE_Key too large")
    stream = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(stream, max_depth=_COSE_KEY_MAX_DEPTH).decode()
    except Exception as exc:  # cbor2 raises several types on bad input; all are CoseError here
        raise CoseError(f"COSE_Key is not valid CBOR: {exc}") from None
    if stream.tell() != len(data):
        raise CoseError("COSE_Key has trailing bytes after the CBOR map")
    if not isinstance(value, Mapping):
        raise CoseError(f"COSE_Key must be a CBOR map, not {type(value).__name__}")
    return value


def _coordinate(cose_key: Mapping[Any, Any], label: int, name: str) -> bytes:
    value = cose_key.get(label)
    if not isinstance(value, bytes):
        raise CoseError(f"COSE_Key {name} ({label}) must be a byte string")
    if len(value) != _COORDINATE_SIZE:
        raise CoseError(
            f"COSE_Key {name} ({label}) must be {_COORDINATE_SIZE} bytes, not {len(value)}"
        )
    return value


def _raw_public(public: algorithms.PublicKey) -> bytes:
    """x || y (64 bytes) for P-256, the 32-byte public key for Ed25519."""
    if isinstance(public, Ed25519PublicKey):
        return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    point = public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return point[1:]
