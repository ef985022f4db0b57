"""SUIT_Component_Identifier ([+ bstr], SUIT manifest 8.4.5.1) as a stable text key.

The TAM stores and compares component ids as the hex of their deterministic CBOR encoding,
so the same id always maps to the same key whatever produced it.
"""

from collections.abc import Sequence

import cbor2

from apps.teep.wire.errors import WireError


def component_id_key(component_id: Sequence[bytes]) -> str:
    parts = list(component_id)
    if not parts or not all(isinstance(part, (bytes, bytearray)) for part in parts):
        raise WireError("a SUIT component identifier is a non-empty array of byte strings")
    return cbor2.dumps([bytes(part) for part in parts], canonical=True).hex()


def component_id_from_key(key: str) -> list[bytes]:
    try:
        value = cbor2.loads(bytes.fromhex(key))
    except (ValueError, cbor2.CBORDecodeError) as exc:
        raise WireError(f"not a component id key: {exc}") from None
    if not isinstance(value, list) or not value or not all(isinstance(p, bytes) for p in value):
        raise WireError("not a component id key: not an array of byte strings")
    return value


def component_id_text(component_id: Sequence[bytes]) -> str:
    """['TEEP-Device', 'SecureFS', h'8d82…', 'ta'] -> TEEP-Device/SecureFS/h'8d82…'/ta."""
    shown = []
    for part in component_id:
        try:
            text = bytes(part).decode("ascii")
            printable = text.isprintable() and "/" not in text and text != ""
        except UnicodeDecodeError:
            printable = False
        shown.append(text if printable else f"h'{bytes(part).hex()}'")
    return "/".join(shown)


def component_id_from_text(text: str) -> list[bytes]:
    """Inverse of component_id_text: parts split on '/', h'..' parts are hex."""
    parts = []
    for piece in text.split("/"):
        if piece.startswith("h'") and piece.endswith("'"):
            try:
                parts.append(bytes.fromhex(piece[2:-1]))
            except ValueError:
                raise WireError(f"bad hex part {piece!r} in component id") from None
        elif piece:
            parts.append(piece.encode())
        else:
            raise WireError("empty part in component id")
    return parts
