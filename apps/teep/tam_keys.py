"""The TAM's own signing keys, loaded from files named in the settings (never from the repo).

TAM_SIGNING_KEY_FILES lists PEM private keys. The TAM needs one P-256 key (ESP256, -9) and
one Ed25519 key (-19), the two cipher suites it MUST support (TEEP 8.1); the first key of
each kind signs, later ones stay published for agents during a rotation. With
TAM_GENERATE_DEVELOPMENT_KEYS (on with DEBUG), missing keys are created in TAM_KEY_DIR.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from apps.teep.wire.keys import TeepKey
from tam_portal.devkeys import create_private_file

DEVELOPMENT_KEY_FILES = {"p256": "tam-esp256.pem", "ed25519": "tam-ed25519.pem"}


@dataclass(frozen=True)
class TamKeySet:
    keys: tuple[TeepKey, ...]

    def signing_key_for(self, alg: int) -> TeepKey | None:
        """The active key able to sign with COSE algorithm `alg`, or None."""
        for key in self.keys:
            if alg in key.algorithms:
                return key
        return None

    def by_kid(self, kid: bytes) -> TeepKey | None:
        return next((key for key in self.keys if key.kid == kid), None)

    @property
    def public_keys(self) -> tuple[TeepKey, ...]:
        return tuple(key.public() for key in self.keys)


def ensure_development_keys(key_dir: Path) -> list[Path]:
    """Create the development key pair files if absent; returns their paths."""
    key_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind, filename in DEVELOPMENT_KEY_FILES.items():
        path = key_dir / filename
        if not path.exists():
            create_private_file(path, TeepKey.generate(kind).private_pem())
        paths.append(path)
    return paths


def configured_key_files() -> list[Path]:
    if settings.TAM_SIGNING_KEY_FILES:
        return [Path(p) for p in settings.TAM_SIGNING_KEY_FILES]
    if settings.TAM_GENERATE_DEVELOPMENT_KEYS:
        return ensure_development_keys(Path(settings.TAM_KEY_DIR))
    raise ImproperlyConfigured(
        "No TAM signing keys: set TAM_SIGNING_KEY_FILES to PEM files holding a P-256 and an "
        "Ed25519 private key (or TAM_GENERATE_DEVELOPMENT_KEYS=true for development)"
    )


@lru_cache(maxsize=1)
def tam_keys() -> TamKeySet:
    keys = []
    for path in configured_key_files():
        try:
            key = TeepKey.from_pem(path.read_bytes())
        except OSError as exc:
            raise ImproperlyConfigured(f"TAM key file {path} cannot be read: {exc.strerror}") from None
        except ValueError as exc:
            raise ImproperlyConfigured(f"TAM key file {path} is not a usable private key: {exc}") from None
        if not key.is_private:
            raise ImproperlyConfigured(f"TAM key file {path} holds a public key; a private key is needed")
        keys.append(key)
    key_set = TamKeySet(tuple(keys))
    for alg, name in ((-9, "P-256 (ESP256)"), (-19, "Ed25519")):
        if key_set.signing_key_for(alg) is None:
            raise ImproperlyConfigured(f"TAM_SIGNING_KEY_FILES has no {name} key; TEEP 8.1 requires both")
    return key_set


def exported_public_keys() -> list[dict]:
    """kid, algorithms, PEM and COSE_Key hex of every TAM key, for provisioning agents."""
    import cbor2

    return [
        {
            "kid": key.kid.hex(),
            "algorithms": list(key.algorithms),
            "pem": key.public_pem().decode(),
            "cose_key": cbor2.dumps(key.to_cose_key(private=False), canonical=True).hex(),
        }
        for key in tam_keys().public_keys
    ]
