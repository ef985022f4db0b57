"""COSE_Sign1 and COSE_Sign for TEEP messages (TEEP 4.1.1, 4.1.2, 8.1; RFC 9052 4).

Built and checked directly with cbor2 (the structures, the Sig_structure of RFC 9052 4.4) and
`cryptography` (the math, `apps.teep.wire.algorithms`, on the key objects each TeepKey holds):
a policy check signs and verifies with no per-call key conversion and decodes each message
once (issue 11). pycose, whose registry `algorithms` extends with ESP256 (-9) and Ed25519
(-19), is the independent implementation tests/wire/test_cose.py checks our output against.
`parse()` checks the CBOR itself: it has a nesting limit, refuses trailing bytes and accepts
tagged and untagged input.

What the TAM sends, following the implementations in ../interop-vectors (teep-wasm-demo,
libteep): a tagged COSE_Sign1 (first byte 0xd2) with `alg` alone in the protected header
(h'a10128' for ESP256) and the RFC 9679 `kid` in the unprotected header. What it accepts:
COSE_Sign1 or COSE_Sign, tagged or untagged (TEEP 4.1.2 does not mandate the tag).
"""

import io
from dataclasses import dataclass, field
from types import EllipsisType
from typing import Any, Literal, Sequence, Union

import cbor2

from apps.teep.wire import algorithms
from apps.teep.wire.algorithms import ED25519, EDDSA, ES256, ESP256, algorithm_name
from apps.teep.wire.errors import CoseError
from apps.teep.wire.keys import TeepKey

algorithms.ensure_registered()

# RFC 9052 Table 1 (CBOR tags) and Table 3 (common header parameters).
COSE_SIGN1_TAG = 18
COSE_SIGN_TAG = 98
HEADER_ALG = 1
HEADER_CRIT = 2
HEADER_CONTENT_TYPE = 3
HEADER_KID = 4

# RFC 9052 4.4: the context string of the Sig_structure.
SIGNATURE1_CONTEXT = "Signature1"
SIGNATURE_CONTEXT = "Signature"

# TEEP 8.1: the mandatory ESP256 / Ed25519, then the pre-2025 ES256 / EdDSA agents still use.
DEFAULT_ALLOWED_ALGS: tuple[int, ...] = (ESP256, ED25519, ES256, EDDSA)

# Header parameters we understand, hence may appear in `crit` (RFC 9052 3.1).
_UNDERSTOOD_HEADERS = frozenset({HEADER_ALG, HEADER_CRIT, HEADER_CONTENT_TYPE, HEADER_KID})

# A COSE_Sign is tag / array / signatures / signature / header map / value: 6 levels. Header
# values may nest a little (e.g. a COSE_Key); nothing legitimate comes close to 16.
MAX_DEPTH = 16

# The protected header we send, `alg` alone, encoded once per algorithm (h'a10128' for ESP256).
_PROTECTED_ALG = {alg: cbor2.dumps({HEADER_ALG: alg}) for alg in algorithms.SIGNATURE_ALGORITHMS}

Structure = Literal["COSE_Sign1", "COSE_Sign"]


@dataclass(frozen=True)
class CoseSignatureInfo:
    """One signature: a COSE_Sign1's own headers, or one COSE_Signature's of a COSE_Sign.

    `protected` is the decoded protected header map. `kid` comes from either bucket; an empty
    byte string, as some older agents send, is reported as b"" (callers decide what it means).
    `protected_bytes` and `signature` are the received bytes verify() signs over and checks;
    they are not part of equality.
    """

    alg: int | None
    kid: bytes | None
    protected: dict
    unprotected: dict
    protected_bytes: bytes = field(default=b"", repr=False, compare=False)
    signature: bytes | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class CoseMessage:
    """A structurally valid, not yet verified COSE_Sign1 or COSE_Sign.

    `protected` / `unprotected` are the body headers (for COSE_Sign1 the same as its one
    signature's); `protected_bytes` the body's protected header as received. `encoded` is the
    exact input. verify() works from these fields and never decodes `encoded` again.
    """

    structure: Structure
    tagged: bool
    payload: bytes | None
    signatures: list[CoseSignatureInfo]
    protected: dict = field(default_factory=dict)
    unprotected: dict = field(default_factory=dict)
    encoded: bytes = field(default=b"", repr=False)
    protected_bytes: bytes = field(default=b"", repr=False, compare=False)


# --- signing ----------------------------------------------------------------------------------


def sign1(
    payload: bytes,
    key: TeepKey,
    alg: int | None = None,
    *,
    kid: Union[bytes, None, EllipsisType] = ...,
    tagged: bool = True,
    detached: bool = False,
    external_aad: bytes = b"",
) -> bytes:
    """COSE_Sign1 over `payload` (TEEP 4.1.1).

    `alg` defaults to the key's TEEP 8.1 algorithm (ESP256 or Ed25519). `kid` defaults to the
    key's RFC 9679 thumbprint; None omits it. With `detached` the payload is nil on the wire
    (RFC 9052 4.1; the SUIT authentication wrapper signs this way).
    """
    _require_bytes(payload, "payload")
    _require_bytes(external_aad, "external_aad")
    alg = _signing_algorithm(key, alg)
    kid_value = key.kid if kid is ... else kid
    unprotected: dict = {}
    if kid_value is not None:
        _require_bytes(kid_value, "kid")
        unprotected[HEADER_KID] = kid_value
    protected = _PROTECTED_ALG[alg]
    signature = _sign(key, sig_structure1(protected, external_aad, payload))
    array = [protected, unprotected, None if detached else payload, signature]
    return cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, array) if tagged else array)


def sign(payload: bytes, signers: Sequence[tuple[TeepKey, int]], *, tagged: bool = True) -> bytes:
    """COSE_Sign with one COSE_Signature per (key, alg), kid in each signature's unprotected header.

    TEEP 8.1: the initial QueryRequest carries one signature per algorithm the TAM offers, so
    an Agent supporting any one of them can verify it. The body headers are empty (a
    zero-length protected header, RFC 9052 4.4).
    """
    _require_bytes(payload, "payload")
    if not signers:
        raise CoseError("COSE_Sign needs at least one signer")
    cose_signatures = []
    for entry in signers:
        try:
            key, alg = entry
        except (TypeError, ValueError):
            raise CoseError("each signer must be a (TeepKey, alg) pair") from None
        alg = _signing_algorithm(key, alg)
        protected = _PROTECTED_ALG[alg]
        to_be_signed = sig_structure(b"", protected, b"", payload)
        cose_signatures.append([protected, {HEADER_KID: key.kid}, _sign(key, to_be_signed)])
    array = [b"", {}, payload, cose_signatures]
    return cbor2.dumps(cbor2.CBORTag(COSE_SIGN_TAG, array) if tagged else array)


# --- parsing ----------------------------------------------------------------------------------


def parse(data: bytes) -> CoseMessage:
    """Check that `data` is one COSE_Sign1 or COSE_Sign (RFC 9052 4.1, 4.2), tagged or not.

    Refused with CoseError: bad or trailing CBOR, another tag or structure, wrong element
    types, a protected header that is not a bstr-wrapped map, labels repeated across the two
    header buckets, alg outside the protected header or not an integer, kid not a byte
    string, a `crit` naming a parameter we do not understand.
    """
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise CoseError(f"COSE message must be bytes, not {type(data).__name__}")
    item = _loads(data, "COSE message")

    tagged = isinstance(item, cbor2.CBORTag)
    if tagged:
        if item.tag not in (COSE_SIGN1_TAG, COSE_SIGN_TAG):
            raise CoseError(f"CBOR tag {item.tag} is not COSE_Sign1 (18) or COSE_Sign (98)")
        array = item.value
    else:
        array = item
    if not isinstance(array, list):
        raise CoseError(f"COSE message must be a CBOR array, not {type(array).__name__}")
    if len(array) != 4:
        raise CoseError(f"COSE_Sign1 / COSE_Sign is an array of 4 elements, not {len(array)}")

    protected_bstr, unprotected_map, payload, last = array
    if tagged:
        structure: Structure = "COSE_Sign1" if item.tag == COSE_SIGN1_TAG else "COSE_Sign"
    else:
        # Untagged: COSE_Sign1 ends with the signature bstr, COSE_Sign with the signatures array.
        structure = "COSE_Sign" if isinstance(last, list) else "COSE_Sign1"

    protected, unprotected = _headers(protected_bstr, unprotected_map, structure)
    if payload is not None and not isinstance(payload, bytes):
        raise CoseError(f"{structure} payload must be a byte string or nil")

    if structure == "COSE_Sign1":
        if not isinstance(last, bytes):
            raise CoseError("COSE_Sign1 signature must be a byte string")
        signatures = [_signature_info(protected, unprotected, protected_bstr, last)]
    else:
        if not isinstance(last, list) or not last:
            raise CoseError("COSE_Sign signatures must be a non-empty array")
        signatures = []
        for index, cose_signature in enumerate(last):
            where = f"COSE_Signature[{index}]"
            if not isinstance(cose_signature, list) or len(cose_signature) != 3:
                raise CoseError(f"{where} must be an array of 3 elements")
            sig_protected, sig_unprotected = _headers(cose_signature[0], cose_signature[1], where)
            if not isinstance(cose_signature[2], bytes):
                raise CoseError(f"{where} signature must be a byte string")
            signatures.append(
                _signature_info(
                    sig_protected, sig_unprotected, cose_signature[0], cose_signature[2]
                )
            )

    return CoseMessage(
        structure=structure,
        tagged=tagged,
        payload=payload,
        signatures=signatures,
        protected=protected,
        unprotected=unprotected,
        encoded=data,
        protected_bytes=protected_bstr,
    )


def _headers(protected_bstr: Any, unprotected: Any, where: str) -> tuple[dict, dict]:
    """RFC 9052 3: protected = bstr .cbor header_map / bstr .size 0; unprotected = header_map."""
    if not isinstance(protected_bstr, bytes):
        raise CoseError(f"{where} protected header must be a byte string (a bstr-wrapped map)")
    if protected_bstr == b"":
        protected = {}
    else:
        protected = _loads(protected_bstr, f"{where} protected header")
        if not isinstance(protected, dict):
            raise CoseError(f"{where} protected header must wrap a CBOR map")
    if not isinstance(unprotected, dict):
        raise CoseError(f"{where} unprotected header must be a CBOR map")
    for bucket, name in ((protected, "protected"), (unprotected, "unprotected")):
        for label in bucket:
            if not (type(label) is int or isinstance(label, str)):
                raise CoseError(f"{where} {name} header label {label!r} is not an int or text")
    repeated = set(protected) & set(unprotected)
    if repeated:
        labels = sorted(map(str, repeated))
        raise CoseError(f"{where} header labels {labels} appear in both buckets")

    if HEADER_ALG in unprotected:
        raise CoseError(f"{where} alg must be in the protected header, not the unprotected one")
    if HEADER_ALG in protected and type(protected[HEADER_ALG]) is not int:
        raise CoseError(f"{where} alg must be an integer, not {protected[HEADER_ALG]!r}")
    for bucket in (protected, unprotected):
        if HEADER_KID in bucket and not isinstance(bucket[HEADER_KID], bytes):
            raise CoseError(f"{where} kid must be a byte string")
    if HEADER_CRIT in protected:
        crit = protected[HEADER_CRIT]
        if not isinstance(crit, list) or not crit:
            raise CoseError(f"{where} crit must be a non-empty array")
        for label in crit:
            if type(label) not in (int, str):
                raise CoseError(f"{where} crit label {label!r} is not an int or text")
            if label not in protected:
                raise CoseError(f"{where} crit names {label!r}, absent from the protected header")
            if label not in _UNDERSTOOD_HEADERS or type(label) is not int:
                raise CoseError(f"{where} critical header parameter {label!r} is not understood")
    _require_no_crit_in(unprotected, where)
    return protected, unprotected


def _require_no_crit_in(unprotected: dict, where: str) -> None:
    if HEADER_CRIT in unprotected:
        raise CoseError(f"{where} crit must be in the protected header")


def _signature_info(
    protected: dict, unprotected: dict, protected_bytes: bytes, signature: bytes
) -> CoseSignatureInfo:
    kid = protected.get(HEADER_KID, unprotected.get(HEADER_KID))
    return CoseSignatureInfo(
        alg=protected.get(HEADER_ALG),
        kid=kid,
        protected=protected,
        unprotected=unprotected,
        protected_bytes=protected_bytes,
        signature=signature,
    )


def _loads(data: bytes, what: str) -> Any:
    stream = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(stream, max_depth=MAX_DEPTH).decode()
    except Exception as exc:  # cbor2 raises many types on hostile input; all mean "bad CBOR"
        raise CoseError(f"{what} is not valid CBOR: {exc}") from None
    if stream.tell() != len(data):
        extra = len(data) - stream.tell()
        raise CoseError(f"{what} has {extra} trailing bytes after the CBOR item")
    return value


# --- verification -----------------------------------------------------------------------------


def verify(
    data: Union[bytes, CoseMessage],
    key: TeepKey,
    *,
    detached_payload: bytes | None = None,
    external_aad: bytes = b"",
    allowed_algs: Sequence[int] = DEFAULT_ALLOWED_ALGS,
) -> bytes:
    """Verify a COSE_Sign1, or one COSE_Signature of a COSE_Sign, with `key`; return the payload.

    `data` is the message bytes or what parse() made of them (then nothing is decoded again).
    The algorithm must be in `allowed_algs` and be one `key` can verify with (ES256 and ESP256
    with P-256, EdDSA and Ed25519 with Ed25519). `kid` is not compared here: callers find the
    key by kid. TEEP 4.1.2: any failure means the message is dropped.
    """
    if not isinstance(key, TeepKey):
        raise CoseError("verification key must be a TeepKey")
    _require_bytes(external_aad, "external_aad")
    if detached_payload is not None:
        _require_bytes(detached_payload, "detached_payload")
    if _is_parsed(data):
        message = data
    else:
        message = parse(data.encoded if isinstance(data, CoseMessage) else data)

    if message.payload is None and detached_payload is None:
        raise CoseError(
            f"{message.structure} payload is detached and no detached_payload was given"
        )
    if message.payload is not None and detached_payload is not None:
        raise CoseError(f"{message.structure} carries its payload; detached_payload must be None")
    payload = message.payload if message.payload is not None else detached_payload

    if message.structure == "COSE_Sign1":
        info = message.signatures[0]
        _check_algorithm(info.alg, key, allowed_algs)
        to_be_signed = sig_structure1(info.protected_bytes, external_aad, payload)
        if _verify(key, to_be_signed, info.signature):
            return payload
        raise CoseError("COSE_Sign1 signature does not verify")

    candidates = [
        info
        for info in message.signatures
        if info.alg in allowed_algs and info.alg in key.algorithms
    ]
    if not candidates:
        offered = ", ".join(algorithm_name(info.alg) for info in message.signatures)
        raise CoseError(
            f"no COSE_Signature uses an allowed algorithm of this {key.kind} key (found {offered})"
        )
    # RFC 9052 4.4: "if there are no protected attributes, a zero-length byte string is used"
    # in the Sig_structure, also when the sender wrapped an empty map (h'a0'), as python-cwt
    # reads it (pycose would sign over the received h'a0').
    body_protected = message.protected_bytes if message.protected else b""
    for info in candidates:
        to_be_signed = sig_structure(body_protected, info.protected_bytes, external_aad, payload)
        if _verify(key, to_be_signed, info.signature):
            return payload
    raise CoseError("no COSE_Signature of the COSE_Sign verifies with this key")


def _is_parsed(data: Any) -> bool:
    """A CoseMessage parse() made (it kept the signed bytes); one built by hand is re-parsed
    from its `encoded` bytes."""
    return isinstance(data, CoseMessage) and all(
        info.signature is not None for info in data.signatures
    )


def _check_algorithm(alg: int | None, key: TeepKey, allowed_algs: Sequence[int]) -> None:
    if alg is None:
        raise CoseError("no alg in the protected header")
    if alg not in allowed_algs:
        raise CoseError(f"algorithm {algorithm_name(alg)} is not allowed")
    if alg not in key.algorithms:
        raise CoseError(f"algorithm {algorithm_name(alg)} does not match the {key.kind} key")


# --- Sig_structure (RFC 9052 4.4) ---------------------------------------------------------------
# Written out rather than through cbor2.dumps: a fixed array of a text and byte strings, three
# of them per policy check, and cbor2's encoder costs ten times the concatenation.

_SIG_STRUCTURE1_HEAD = b"\x84" + cbor2.dumps(SIGNATURE1_CONTEXT)  # array(4), "Signature1"
_SIG_STRUCTURE_HEAD = b"\x85" + cbor2.dumps(SIGNATURE_CONTEXT)  # array(5), "Signature"


def _bstr_head(size: int) -> bytes:
    """The head of a CBOR byte string of `size` bytes, shortest form (RFC 8949 3.1, 4.2.1)."""
    if size < 24:
        return bytes((0x40 | size,))
    if size < 0x100:
        return bytes((0x58, size))
    if size < 0x10000:
        return b"\x59" + size.to_bytes(2, "big")
    if size < 0x100000000:
        return b"\x5a" + size.to_bytes(4, "big")
    return b"\x5b" + size.to_bytes(8, "big")


def sig_structure1(protected: bytes, external_aad: bytes, payload: bytes) -> bytes:
    """["Signature1", body_protected, external_aad, payload], what a COSE_Sign1 signs."""
    return b"".join(
        (
            _SIG_STRUCTURE1_HEAD,
            _bstr_head(len(protected)),
            protected,
            _bstr_head(len(external_aad)),
            external_aad,
            _bstr_head(len(payload)),
            payload,
        )
    )


def sig_structure(
    body_protected: bytes, sign_protected: bytes, external_aad: bytes, payload: bytes
) -> bytes:
    """["Signature", body_protected, sign_protected, external_aad, payload]: what one
    COSE_Signature of a COSE_Sign signs."""
    return b"".join(
        (
            _SIG_STRUCTURE_HEAD,
            _bstr_head(len(body_protected)),
            body_protected,
            _bstr_head(len(sign_protected)),
            sign_protected,
            _bstr_head(len(external_aad)),
            external_aad,
            _bstr_head(len(payload)),
            payload,
        )
    )


# --- the math, on the `cryptography` keys the TeepKey holds -------------------------------------


def _signing_algorithm(key: TeepKey, alg: int | None) -> int:
    if not isinstance(key, TeepKey):
        raise CoseError("signing key must be a TeepKey")
    if not key.is_private:
        raise CoseError("signing needs a private key")
    if alg is None:
        return key.default_algorithm
    if alg not in key.algorithms:
        raise CoseError(f"algorithm {algorithm_name(alg)} does not match the {key.kind} key")
    return alg


def _sign(key: TeepKey, to_be_signed: bytes) -> bytes:
    # The caller checked that the algorithm belongs to the key's kind (`key.algorithms`).
    if key.kind == "p256":
        return algorithms.ecdsa_p256_sign(key.private_key, to_be_signed)
    return algorithms.ed25519_sign(key.private_key, to_be_signed)


def _verify(key: TeepKey, to_be_signed: bytes, signature: bytes) -> bool:
    if key.kind == "p256":
        return algorithms.ecdsa_p256_verify(key.public_key, to_be_signed, signature)
    return algorithms.ed25519_verify(key.public_key, to_be_signed, signature)


def _require_bytes(value: Any, name: str) -> None:
    if not isinstance(value, bytes):
        raise CoseError(f"{name} must be bytes, not {type(value).__name__}")
