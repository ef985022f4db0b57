"""Encryption of secrets at rest (DESIGN.md "Keys"): AES-256-GCM under keys named in settings.

TAM_DATA_ENCRYPTION_KEY_FILE lists files holding a 32-byte key (raw, or base64 text). The
first key encrypts; every listed key decrypts, so a key is rotated by putting the new one
first and keeping the old one listed until no row uses it (`key_id` on each row says which).
With TAM_GENERATE_DEVELOPMENT_KEYS and nothing configured, a development key is created in
TAM_KEY_DIR, like the development TAM signing keys (apps.teep.tam_keys).

Every ciphertext carries a fresh random 96-bit nonce (NIST SP 800-38D 8.2.2) and associated
data naming what it belongs to, so a ciphertext moved to another row does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from tam_portal.devkeys import create_private_file

KEY_BYTES = 32
NONCE_BYTES = 12
DEVELOPMENT_KEY_FILE = "data-encryption.key"


class AtRestError(Exception):
    """A stored ciphertext cannot be opened: unknown key id, or not authentic."""


@dataclass(frozen=True)
class DataKey:
    key_id: str  # public: derived from the key, names it in rows and logs
    key: bytes

    @classmethod
    def from_bytes(cls, key: bytes) -> DataKey:
        if len(key) != KEY_BYTES:
            raise ValueError(f"a data encryption key has {KEY_BYTES} bytes, not {len(key)}")
        key_id = hashlib.sha256(b"tam-portal data encryption key id\x00" + key).hexdigest()[:16]
        return cls(key_id, key)

    def __repr__(self) -> str:  # never print the key
        return f"DataKey({self.key_id})"


@dataclass(frozen=True)
class Sealed:
    key_id: str
    nonce: bytes
    ciphertext: bytes  # includes the 16-byte GCM tag


def read_key_file(path: Path) -> DataKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImproperlyConfigured(f"data encryption key file {path}: {exc.strerror}") from None
    if len(data) != KEY_BYTES:
        try:
            data = base64.b64decode(data.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ImproperlyConfigured(
                f"data encryption key file {path} holds neither {KEY_BYTES} raw bytes nor base64"
            ) from None
    try:
        return DataKey.from_bytes(data)
    except ValueError as exc:
        raise ImproperlyConfigured(f"data encryption key file {path}: {exc}") from None


def ensure_development_key(key_dir: Path) -> Path:
    key_dir.mkdir(parents=True, exist_ok=True)
    path = key_dir / DEVELOPMENT_KEY_FILE
    if not path.exists():
        create_private_file(path, base64.b64encode(os.urandom(KEY_BYTES)) + b"\n")
    return path


def configured_key_files() -> list[Path]:
    if settings.TAM_DATA_ENCRYPTION_KEY_FILE:
        return [Path(p) for p in settings.TAM_DATA_ENCRYPTION_KEY_FILE]
    if settings.TAM_GENERATE_DEVELOPMENT_KEYS:
        return [ensure_development_key(Path(settings.TAM_KEY_DIR))]
    raise ImproperlyConfigured(
        "No data encryption key: set TAM_DATA_ENCRYPTION_KEY_FILE to a file holding 32 random "
        "bytes (raw or base64), or TAM_GENERATE_DEVELOPMENT_KEYS=true for development"
    )


@lru_cache(maxsize=1)
def data_keys() -> tuple[DataKey, ...]:
    """The configured keys, the encrypting one first."""
    keys = tuple(read_key_file(path) for path in configured_key_files())
    if len({key.key_id for key in keys}) != len(keys):
        raise ImproperlyConfigured("TAM_DATA_ENCRYPTION_KEY_FILE lists the same key twice")
    return keys


def seal(plaintext: bytes, associated_data: bytes) -> Sealed:
    key = data_keys()[0]
    nonce = os.urandom(NONCE_BYTES)
    return Sealed(key.key_id, nonce, AESGCM(key.key).encrypt(nonce, plaintext, associated_data))


def open_sealed(sealed: Sealed, associated_data: bytes) -> bytes:
    key = next((k for k in data_keys() if k.key_id == sealed.key_id), None)
    if key is None:
        raise AtRestError(f"data encryption key {sealed.key_id} is not configured")
    try:
        return AESGCM(key.key).decrypt(
            bytes(sealed.nonce), bytes(sealed.ciphertext), associated_data
        )
    except InvalidTag:
        raise AtRestError(
            "stored ciphertext is not authentic (tampered, or moved from another row)"
        ) from None
