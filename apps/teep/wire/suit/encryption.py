"""SUIT firmware encryption (draft-ietf-suit-firmware-encryption-25) and TEEP 8.2 encryption.

Content key distribution (encryption 5):
- ES-DH (5.2): ECDH-ES + A128KW (-29). The sender's ephemeral key goes in the recipient's
  unprotected header (-1); the KEK is HKDF-SHA256 (RFC 9053 5.1, no salt unless header -20
  carries one) over the ECDH secret with info = COSE_KDF_Context (5.2.4):
  [AlgorithmID -3, [nil, nil, nil], [nil, nil, nil], [128, recipient protected bstr, other]];
  the CEK is AES-KW-wrapped (RFC 3394) with the KEK.
- AES-KW (5.1): A128KW / A192KW / A256KW (-3 / -4 / -5) with a pre-shared KEK (bytes).

Content encryption (encryption 6): A128CTR / A192CTR / A256CTR (-65534 / -65533 / -65532,
IV = first counter block, protected header MUST be empty, 6), A128GCM / A192GCM / A256GCM
(1 / 2 / 3) and ChaCha20/Poly1305 (24), with Enc_structure ["Encrypt", protected, h''] as AAD.

`other` is the protocol string of 5.2.4: "SUIT Payload Encryption" for payloads, and, per
TEEP 8.2, "SUIT Report Encryption" / "EAT Encryption" for what agents encrypt to the TAM. SUIT
payloads use a detached ciphertext (encryption info in parameter 19, ciphertext fetched or in
parameter 18); TEEP's EAT / report encryption carries it inside the COSE_Encrypt (`attached`).

Recipient keys: a P-256 TeepKey (or a `cryptography` P-256 / X25519 key; X25519 is the key
exchange of MTI's ed25519 profiles), or bytes = an AES-KW KEK.
"""

import os
from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from apps.teep.wire.errors import CoseError, SuitError
from apps.teep.wire.keys import TeepKey
from apps.teep.wire.suit import constants as c
from apps.teep.wire.suit._cbor import decode_exact, deterministic, encode

# Content algorithms: id -> (kind, key bytes, IV bytes).
_CONTENT_ALGORITHMS = {
    c.A128CTR: ("ctr", 16, 16),
    c.A192CTR: ("ctr", 24, 16),
    c.A256CTR: ("ctr", 32, 16),
    c.A128GCM: ("gcm", 16, 12),
    c.A192GCM: ("gcm", 24, 12),
    c.A256GCM: ("gcm", 32, 12),
    c.CHACHA20_POLY1305: ("chacha", 32, 12),
}
_KEY_WRAP_SIZES = {c.A128KW: 16, c.A192KW: 24, c.A256KW: 32}
_HEADER_SALT = -20  # RFC 9053 5.1 "salt" algorithm header parameter

RecipientPublicKey = TeepKey | ec.EllipticCurvePublicKey | X25519PublicKey | bytes
RecipientPrivateKey = TeepKey | ec.EllipticCurvePrivateKey | X25519PrivateKey | bytes


@dataclass(frozen=True)
class EncryptionInfo:
    """A decoded SUIT_Encryption_Info / COSE_Encrypt (encryption 5.1.3, 5.2.3)."""

    protected: bytes  # the protected header bstr as on the wire
    unprotected: dict
    content_alg: int
    iv: bytes
    ciphertext: bytes | None  # None = detached
    recipients: tuple["Recipient", ...]


@dataclass(frozen=True)
class Recipient:
    protected: bytes
    unprotected: dict
    alg: int
    kid: bytes | None
    encrypted_key: bytes


# --- encrypting -------------------------------------------------------------------------------


def encrypt_for_recipient(
    plaintext: bytes,
    recipient_public_key: RecipientPublicKey,
    *,
    content_alg: int = c.A128CTR,
    context_other: bytes = c.CONTEXT_SUIT_PAYLOAD,
    kid: bytes | None = None,
) -> tuple[bytes, bytes]:
    """Encrypt a SUIT payload for one device: (SUIT_Encryption_Info bytes, detached ciphertext).

    The info goes in suit-parameter-encryption-info (19), the ciphertext in
    suit-parameter-content (18) or behind a URI. `kid` identifies the recipient key (header 4).
    """
    info, ciphertext = _encrypt(
        plaintext, recipient_public_key, content_alg, context_other, kid, False
    )
    return info, ciphertext


def encrypt_cose_encrypt(
    plaintext: bytes,
    recipient_public_key: RecipientPublicKey,
    *,
    context_other: bytes,
    content_alg: int = c.A128GCM,
    kid: bytes | None = None,
    attached: bool = True,
) -> bytes:
    """A tagged COSE_Encrypt (96) for TEEP 8.2 ("EAT Encryption", "SUIT Report Encryption").

    With `attached` (the default) the ciphertext is inside the structure; otherwise it is nil
    and this returns only the structure (use encrypt_for_recipient to get the ciphertext too).
    """
    info, ciphertext = _encrypt(
        plaintext, recipient_public_key, content_alg, context_other, kid, attached
    )
    return info


def _encrypt(
    plaintext: bytes,
    recipient: RecipientPublicKey,
    content_alg: int,
    context_other: bytes,
    kid: bytes | None,
    attached: bool,
) -> tuple[bytes, bytes]:
    if isinstance(plaintext, (bytearray, memoryview)):
        plaintext = bytes(plaintext)
    if not isinstance(plaintext, bytes):
        raise SuitError("plaintext must be bytes")
    if not isinstance(context_other, bytes):
        raise SuitError("context_other must be bytes")
    if kid is not None and not isinstance(kid, bytes):
        raise SuitError("kid must be bytes")
    if content_alg not in _CONTENT_ALGORITHMS or isinstance(content_alg, bool):
        raise SuitError(f"unsupported content encryption algorithm {content_alg!r}")
    kind, key_size, iv_size = _CONTENT_ALGORITHMS[content_alg]
    cek = os.urandom(key_size)
    iv = os.urandom(iv_size)

    if kind == "ctr":
        # encryption 6: with AES-CTR the protected header MUST be empty and alg is unprotected.
        protected = b""
        unprotected: dict[int, Any] = {c.HEADER_ALG: content_alg, c.HEADER_IV: iv}
    else:
        protected = encode({c.HEADER_ALG: content_alg})
        unprotected = {c.HEADER_IV: iv}
    ciphertext = _content_encrypt(kind, cek, iv, plaintext, protected)
    recipient_array = _wrap_for_recipient(cek, recipient, context_other, kid)
    structure = [protected, unprotected, ciphertext if attached else None, [recipient_array]]
    return cbor2.dumps(cbor2.CBORTag(c.TAG_COSE_ENCRYPT, deterministic(structure))), ciphertext


def _wrap_for_recipient(
    cek: bytes, recipient: RecipientPublicKey, context_other: bytes, kid: bytes | None
) -> list:
    if isinstance(recipient, (bytes, bytearray)):
        kek = bytes(recipient)
        alg = {16: c.A128KW, 24: c.A192KW, 32: c.A256KW}.get(len(kek))
        if alg is None:
            raise SuitError("an AES-KW key-encryption key must be 16, 24 or 32 bytes")
        unprotected: dict[int, Any] = {c.HEADER_ALG: alg}
        if kid is not None:
            unprotected[c.HEADER_KID] = kid
        return [b"", unprotected, aes_key_wrap(kek, cek)]

    public = _public_key(recipient)
    recipient_protected = encode({c.HEADER_ALG: c.ECDH_ES_A128KW})
    if isinstance(public, X25519PublicKey):
        ephemeral = X25519PrivateKey.generate()
        shared = ephemeral.exchange(public)
        ephemeral_public = ephemeral.public_key().public_bytes_raw()
        ephemeral_cose = {c.KEY_KTY: c.KTY_OKP, c.KEY_CRV: c.CRV_X25519, c.KEY_X: ephemeral_public}
    else:
        ephemeral = ec.generate_private_key(ec.SECP256R1())
        shared = ephemeral.exchange(ec.ECDH(), public)
        numbers = ephemeral.public_key().public_numbers()
        ephemeral_cose = {
            c.KEY_KTY: c.KTY_EC2,
            c.KEY_CRV: c.CRV_P256,
            c.KEY_X: numbers.x.to_bytes(32, "big"),
            c.KEY_Y: numbers.y.to_bytes(32, "big"),
        }
    kek = _kdf(shared, recipient_protected, context_other, salt=None)
    unprotected = {c.HEADER_EPHEMERAL_KEY: ephemeral_cose}
    if kid is not None:
        unprotected[c.HEADER_KID] = kid
    return [recipient_protected, unprotected, aes_key_wrap(kek, cek)]


def _public_key(key: object) -> ec.EllipticCurvePublicKey | X25519PublicKey:
    if isinstance(key, TeepKey):
        if key.kind != "p256":
            raise SuitError(
                "ECDH-ES needs a P-256 (or X25519) key; an Ed25519 TeepKey cannot do key agreement"
            )
        return key.public_key
    if isinstance(key, (ec.EllipticCurvePrivateKey, X25519PrivateKey)):
        key = key.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise SuitError("ECDH-ES recipient key must be on P-256")
        return key
    if isinstance(key, X25519PublicKey):
        return key
    raise SuitError(f"unsupported recipient key type {type(key).__name__}")


# --- decrypting -------------------------------------------------------------------------------


def parse_encryption_info(data: bytes) -> EncryptionInfo:
    """Decode a SUIT_Encryption_Info / COSE_Encrypt (tag 96, or untagged), checking its shape."""
    item = decode_exact(data, "SUIT_Encryption_Info")
    if isinstance(item, cbor2.CBORTag):
        if item.tag != c.TAG_COSE_ENCRYPT:
            raise SuitError(f"SUIT_Encryption_Info: CBOR tag {item.tag} is not COSE_Encrypt (96)")
        item = item.value
    if not isinstance(item, list) or len(item) != 4:
        raise SuitError("SUIT_Encryption_Info: not a COSE_Encrypt (an array of 4 elements)")
    protected, unprotected, ciphertext, recipients = item
    protected_map = _protected_map(protected, "SUIT_Encryption_Info protected header")
    if not isinstance(unprotected, dict):
        raise SuitError("SUIT_Encryption_Info unprotected header is not a map")
    if ciphertext is not None and not isinstance(ciphertext, bytes):
        raise SuitError("SUIT_Encryption_Info ciphertext is neither a byte string nor nil")
    content_alg = _header(protected_map, unprotected, c.HEADER_ALG)
    if content_alg not in _CONTENT_ALGORITHMS or isinstance(content_alg, bool):
        raise SuitError(
            f"SUIT_Encryption_Info: unsupported content encryption algorithm {content_alg!r}"
        )
    iv = _header(protected_map, unprotected, c.HEADER_IV)
    if not isinstance(iv, bytes) or len(iv) != _CONTENT_ALGORITHMS[content_alg][2]:
        raise SuitError("SUIT_Encryption_Info: IV (header 5) missing or of the wrong size")
    if _CONTENT_ALGORITHMS[content_alg][0] == "ctr" and protected != b"":
        raise SuitError(
            "SUIT_Encryption_Info: AES-CTR requires an empty protected header (encryption 6)"
        )
    if not isinstance(recipients, list) or not recipients:
        raise SuitError("SUIT_Encryption_Info: recipients is not a non-empty array")
    parsed = []
    for index, recipient in enumerate(recipients):
        where = f"SUIT_Encryption_Info recipient {index}"
        if not isinstance(recipient, list) or len(recipient) != 3:
            raise SuitError(f"{where}: not a COSE_recipient (an array of 3 elements)")
        r_protected, r_unprotected, encrypted_key = recipient
        r_protected_map = _protected_map(r_protected, f"{where} protected header")
        if not isinstance(r_unprotected, dict):
            raise SuitError(f"{where}: unprotected header is not a map")
        if not isinstance(encrypted_key, bytes):
            raise SuitError(f"{where}: encrypted key is not a byte string")
        alg = _header(r_protected_map, r_unprotected, c.HEADER_ALG)
        kid = r_unprotected.get(c.HEADER_KID, r_protected_map.get(c.HEADER_KID))
        if kid is not None and not isinstance(kid, bytes):
            raise SuitError(f"{where}: kid is not a byte string")
        if not (isinstance(alg, int) and not isinstance(alg, bool)):
            raise SuitError(f"{where}: no integer key distribution algorithm")
        parsed.append(Recipient(r_protected, r_unprotected, alg, kid, encrypted_key))
    return EncryptionInfo(protected, unprotected, content_alg, iv, ciphertext, tuple(parsed))


def decrypt_with_key(
    encryption_info: bytes,
    ciphertext: bytes | None,
    recipient_private_key: RecipientPrivateKey,
    *,
    context_other: bytes = c.CONTEXT_SUIT_PAYLOAD,
) -> bytes:
    """Decrypt a SUIT payload: the SUIT_Encryption_Info bytes and the detached ciphertext.

    `ciphertext` None means "take it from the COSE_Encrypt" (attached). SuitError when no
    recipient can be opened with the key (wrong key, tampered key material) or the content
    does not decrypt (AEAD tag mismatch).
    """
    info = parse_encryption_info(encryption_info)
    if ciphertext is None:
        if info.ciphertext is None:
            raise SuitError("the ciphertext is detached and none was given")
        ciphertext = info.ciphertext
    elif info.ciphertext is not None:
        raise SuitError("the COSE_Encrypt carries its ciphertext; do not pass a detached one")
    if isinstance(ciphertext, (bytearray, memoryview)):
        ciphertext = bytes(ciphertext)
    if not isinstance(ciphertext, bytes):
        raise SuitError("ciphertext must be bytes")
    if not isinstance(context_other, bytes):
        raise SuitError("context_other must be bytes")

    cek = _unwrap_cek(info, recipient_private_key, context_other)
    kind, key_size, _ = _CONTENT_ALGORITHMS[info.content_alg]
    if len(cek) != key_size:
        raise SuitError(
            f"unwrapped content key has {len(cek)} bytes; the content algorithm needs {key_size}"
        )
    return _content_decrypt(kind, cek, info.iv, ciphertext, info.protected)


def decrypt_cose_encrypt(
    data: bytes,
    recipient_private_key: RecipientPrivateKey,
    *,
    context_other: bytes,
    detached_ciphertext: bytes | None = None,
) -> bytes:
    """Decrypt a COSE_Encrypt made by encrypt_cose_encrypt (or an agent, TEEP 8.2)."""
    return decrypt_with_key(
        data, detached_ciphertext, recipient_private_key, context_other=context_other
    )


def _unwrap_cek(info: EncryptionInfo, key: RecipientPrivateKey, context_other: bytes) -> bytes:
    symmetric = isinstance(key, (bytes, bytearray))
    failures = []
    for index, recipient in enumerate(info.recipients):
        if symmetric and recipient.alg in _KEY_WRAP_SIZES:
            kek = bytes(key)
            if len(kek) != _KEY_WRAP_SIZES[recipient.alg]:
                wrap = c.COSE_ALGORITHM_NAMES[recipient.alg]
                failures.append(f"recipient {index}: key size does not fit {wrap}")
                continue
        elif not symmetric and recipient.alg == c.ECDH_ES_A128KW:
            try:
                kek = _es_dh_kek(recipient, key, context_other)
            except SuitError as exc:
                failures.append(f"recipient {index}: {exc}")
                continue
        else:
            failures.append(
                f"recipient {index}: algorithm {recipient.alg} does not fit the key given"
            )
            continue
        try:
            return aes_key_unwrap(kek, recipient.encrypted_key)
        except (InvalidUnwrap, ValueError):
            failures.append(
                f"recipient {index}: content key unwrap failed (wrong key or tampered data)"
            )
    raise SuitError("cannot decrypt: " + "; ".join(failures))


def _es_dh_kek(recipient: Recipient, key: object, context_other: bytes) -> bytes:
    private = _private_key(key)
    ephemeral = recipient.unprotected.get(c.HEADER_EPHEMERAL_KEY)
    if not isinstance(ephemeral, dict):
        raise SuitError("no ephemeral COSE_Key (header -1) in the recipient")
    kty, crv = ephemeral.get(c.KEY_KTY), ephemeral.get(c.KEY_CRV)
    try:
        if isinstance(private, ec.EllipticCurvePrivateKey):
            x, y = ephemeral.get(c.KEY_X), ephemeral.get(c.KEY_Y)
            if (
                kty != c.KTY_EC2
                or crv != c.CRV_P256
                or not isinstance(x, bytes)
                or not isinstance(y, bytes)
            ):
                raise SuitError("ephemeral key is not an EC2 P-256 COSE_Key with x and y")
            if len(x) != 32 or len(y) != 32:
                raise SuitError("ephemeral key coordinates are not 32 bytes")
            peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + x + y)
            shared = private.exchange(ec.ECDH(), peer)
        else:
            x = ephemeral.get(c.KEY_X)
            if kty != c.KTY_OKP or crv != c.CRV_X25519 or not isinstance(x, bytes) or len(x) != 32:
                raise SuitError("ephemeral key is not an OKP X25519 COSE_Key")
            shared = private.exchange(X25519PublicKey.from_public_bytes(x))
    except ValueError as exc:
        raise SuitError(f"ephemeral key unusable: {exc}") from None
    salt = recipient.unprotected.get(_HEADER_SALT)
    if salt is not None and not isinstance(salt, bytes):
        raise SuitError("salt (header -20) is not a byte string")
    return _kdf(shared, recipient.protected, context_other, salt=salt)


def _private_key(key: object) -> ec.EllipticCurvePrivateKey | X25519PrivateKey:
    if isinstance(key, TeepKey):
        if key.kind != "p256":
            raise SuitError(
                "ECDH-ES needs a P-256 (or X25519) key; an Ed25519 TeepKey cannot do key agreement"
            )
        try:
            return key.private_key
        except CoseError:
            raise SuitError("decryption needs the recipient's private key") from None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise SuitError("ECDH-ES recipient key must be on P-256")
        return key
    if isinstance(key, X25519PrivateKey):
        return key
    raise SuitError(f"decryption needs a private key, not {type(key).__name__}")


def kdf_context(recipient_protected: bytes, context_other: bytes, key_bits: int = 128) -> bytes:
    """COSE_KDF_Context of encryption 5.2.4 (TEEP 8.2 only changes `other`)."""
    return cbor2.dumps(
        [
            c.A128KW,
            [None, None, None],
            [None, None, None],
            [key_bits, recipient_protected, context_other],
        ]
    )


def _kdf(
    shared: bytes, recipient_protected: bytes, context_other: bytes, *, salt: bytes | None
) -> bytes:
    info = kdf_context(recipient_protected, context_other)
    return HKDF(algorithm=hashes.SHA256(), length=16, salt=salt, info=info).derive(shared)


# --- content layer ----------------------------------------------------------------------------


def _enc_structure(protected: bytes) -> bytes:
    # RFC 9052 5.3; encryption 6: external_aad is h''.
    return cbor2.dumps(["Encrypt", protected, b""])


def _content_encrypt(kind: str, cek: bytes, iv: bytes, plaintext: bytes, protected: bytes) -> bytes:
    if kind == "ctr":
        encryptor = Cipher(algorithms.AES(cek), modes.CTR(iv)).encryptor()
        return encryptor.update(plaintext) + encryptor.finalize()
    aead = AESGCM(cek) if kind == "gcm" else ChaCha20Poly1305(cek)
    return aead.encrypt(iv, plaintext, _enc_structure(protected))


def _content_decrypt(
    kind: str, cek: bytes, iv: bytes, ciphertext: bytes, protected: bytes
) -> bytes:
    if kind == "ctr":
        decryptor = Cipher(algorithms.AES(cek), modes.CTR(iv)).decryptor()
        return decryptor.update(ciphertext) + decryptor.finalize()
    aead = AESGCM(cek) if kind == "gcm" else ChaCha20Poly1305(cek)
    try:
        return aead.decrypt(iv, ciphertext, _enc_structure(protected))
    except Exception:  # cryptography's InvalidTag, or ValueError for a too-short input
        raise SuitError("content decryption failed: authentication tag does not match") from None


# --- helpers ------------------------------------------------------------------------------------


def _protected_map(protected: object, what: str) -> dict:
    if not isinstance(protected, bytes):
        raise SuitError(f"{what} is not a byte string")
    if protected == b"":
        return {}
    value = decode_exact(protected, what)
    if not isinstance(value, dict):
        raise SuitError(f"{what} does not wrap a map")
    return value


def _header(protected: dict, unprotected: dict, label: int) -> Any:
    if label in protected and label in unprotected:
        raise SuitError(f"header {label} appears in both the protected and the unprotected header")
    return protected.get(label, unprotected.get(label))


# --- COSE_Encrypt0 (a pre-shared content key; SUIT report 8 SUIT_Report_COSE_Encrypt0) ---------


def encrypt_cose_encrypt0(
    plaintext: bytes, key: bytes, *, content_alg: int = c.A128GCM, tagged: bool = True
) -> bytes:
    """COSE_Encrypt0 (RFC 9052 5.2) with the ciphertext attached, under a shared content key."""
    if not isinstance(plaintext, bytes) or not isinstance(key, bytes):
        raise SuitError("plaintext and key must be bytes")
    if content_alg not in _CONTENT_ALGORITHMS or isinstance(content_alg, bool):
        raise SuitError(f"unsupported content encryption algorithm {content_alg!r}")
    kind, key_size, iv_size = _CONTENT_ALGORITHMS[content_alg]
    if len(key) != key_size:
        raise SuitError(f"{c.COSE_ALGORITHM_NAMES[content_alg]} needs a {key_size}-byte key")
    iv = os.urandom(iv_size)
    if kind == "ctr":
        protected, unprotected = b"", {c.HEADER_ALG: content_alg, c.HEADER_IV: iv}
    else:
        protected, unprotected = encode({c.HEADER_ALG: content_alg}), {c.HEADER_IV: iv}
    ciphertext = _content_encrypt0(kind, key, iv, plaintext, protected)
    structure = deterministic([protected, unprotected, ciphertext])
    return cbor2.dumps(cbor2.CBORTag(c.TAG_COSE_ENCRYPT0, structure) if tagged else structure)


def decrypt_cose_encrypt0(data: bytes, key: bytes) -> bytes:
    """Decrypt a COSE_Encrypt0 (tagged 16 or untagged) with its content key."""
    item = decode_exact(data, "COSE_Encrypt0")
    if isinstance(item, cbor2.CBORTag):
        if item.tag != c.TAG_COSE_ENCRYPT0:
            raise SuitError(f"COSE_Encrypt0: CBOR tag {item.tag} is not 16")
        item = item.value
    if not isinstance(item, list) or len(item) != 3:
        raise SuitError("COSE_Encrypt0 is not an array of 3 elements")
    protected, unprotected, ciphertext = item
    protected_map = _protected_map(protected, "COSE_Encrypt0 protected header")
    if not isinstance(unprotected, dict):
        raise SuitError("COSE_Encrypt0 unprotected header is not a map")
    if not isinstance(ciphertext, bytes):
        raise SuitError("COSE_Encrypt0 ciphertext is not attached")
    alg = _header(protected_map, unprotected, c.HEADER_ALG)
    if alg not in _CONTENT_ALGORITHMS or isinstance(alg, bool):
        raise SuitError(f"COSE_Encrypt0: unsupported content encryption algorithm {alg!r}")
    kind, key_size, iv_size = _CONTENT_ALGORITHMS[alg]
    iv = _header(protected_map, unprotected, c.HEADER_IV)
    if not isinstance(iv, bytes) or len(iv) != iv_size:
        raise SuitError("COSE_Encrypt0: IV (header 5) missing or of the wrong size")
    if not isinstance(key, (bytes, bytearray)) or len(key) != key_size:
        raise SuitError(f"COSE_Encrypt0: {c.COSE_ALGORITHM_NAMES[alg]} needs a {key_size}-byte key")
    if kind == "ctr":
        return _content_decrypt(kind, bytes(key), iv, ciphertext, protected)
    aead = AESGCM(bytes(key)) if kind == "gcm" else ChaCha20Poly1305(bytes(key))
    try:
        return aead.decrypt(iv, ciphertext, cbor2.dumps(["Encrypt0", protected, b""]))
    except Exception:
        raise SuitError(
            "COSE_Encrypt0 decryption failed: authentication tag does not match"
        ) from None


def _content_encrypt0(
    kind: str, key: bytes, iv: bytes, plaintext: bytes, protected: bytes
) -> bytes:
    if kind == "ctr":
        return _content_encrypt(kind, key, iv, plaintext, protected)
    aead = AESGCM(key) if kind == "gcm" else ChaCha20Poly1305(key)
    return aead.encrypt(iv, plaintext, cbor2.dumps(["Encrypt0", protected, b""]))
