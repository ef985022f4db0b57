"""SUIT_Component_Identifier (SUIT manifest 8.4.5.1: `[+ bstr]`) in the three forms we use.

- stored: the hex of the deterministic CBOR encoding of the array of byte strings
  (apps.teep.wire.component_ids.component_id_key), the key the TAM and the device records
  share, so that the id an agent reports and the one in a manifest compare as text;
- readable: diagnostic notation, e.g. `['TEEP-Device', 'SecureFS', h'8d82573a...', 'ta']`,
  printable ASCII elements as text, everything else as hex;
- typed by an operator: the same readable form, or the CBOR as hex.
"""

from __future__ import annotations

import binascii
import re
import uuid

from apps.teep.wire import component_ids
from apps.teep.wire.errors import WireError

# TEEP Appendix E: the manifest's own component id is the TC's with its last element 'suit'.
MANIFEST_ID_SUFFIX = b"suit"

_MAX_ELEMENTS = 16
_MAX_ELEMENT_BYTES = 256
_ELEMENT = re.compile(
    r"""\s*(?:h'([0-9A-Fa-f\s]*)'|'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\s*(,|$)"""
)


class ComponentIdError(ValueError):
    pass


# --- SUIT vendor and class ids (manifest 8.4.8.3 "Constructing UUIDs") ---------------------------


def default_vendor_id(vendor_domain: str) -> uuid.UUID:
    """The RECOMMENDED vendor id: UUID5(IANA namespace DNS, vendor domain name)."""
    return uuid.uuid5(uuid.NAMESPACE_DNS, vendor_domain)


def default_class_id(vendor_id: uuid.UUID, component_name: str) -> uuid.UUID:
    """The RECOMMENDED class id: UUID5(vendor id, class-specific information); ours is the
    Trusted Component's name when it was created."""
    return uuid.uuid5(vendor_id, component_name)


def encode(elements: list[bytes] | tuple[bytes, ...]) -> str:
    elements = list(elements)
    if not elements:
        raise ComponentIdError("a component identifier has at least one element")
    if len(elements) > _MAX_ELEMENTS:
        raise ComponentIdError(f"a component identifier has at most {_MAX_ELEMENTS} elements")
    for element in elements:
        if not isinstance(element, bytes):
            raise ComponentIdError("every element of a component identifier is a byte string")
        if len(element) > _MAX_ELEMENT_BYTES:
            raise ComponentIdError(f"an element is longer than {_MAX_ELEMENT_BYTES} bytes")
    return component_ids.component_id_key(elements)


def decode(key: str) -> list[bytes]:
    try:
        return component_ids.component_id_from_key(key)
    except WireError as exc:
        raise ComponentIdError(str(exc)) from None


def readable(elements: list[bytes] | tuple[bytes, ...]) -> str:
    parts = []
    for element in elements:
        if element and all(0x20 <= b < 0x7F and b not in (0x27, 0x5C) for b in element):
            parts.append(f"'{element.decode('ascii')}'")
        else:
            parts.append(f"h'{element.hex()}'")
    return "[" + ", ".join(parts) + "]"


def parse(text: str) -> list[bytes]:
    """Elements from the readable form (`['a', h'0102']`) or from the CBOR array as hex."""
    text = (text or "").strip()
    if not text:
        raise ComponentIdError(
            "enter the component identifier, e.g. ['TEEP-Device', h'0102', 'ta']"
        )
    if not text.startswith("["):
        try:
            return decode("".join(text.split()))
        except ComponentIdError:
            raise ComponentIdError(
                "write the identifier as a list such as ['TEEP-Device', h'8d82...', 'ta'] "
                "or as the hex of its CBOR array"
            ) from None
    if not text.endswith("]"):
        raise ComponentIdError("the list must end with ]")
    body = text[1:-1].strip()
    elements: list[bytes] = []
    position = 0
    while position < len(body):
        match = _ELEMENT.match(body, position)
        if not match or match.end() == position:
            raise ComponentIdError(
                f"cannot read element {len(elements) + 1}: "
                "write 'text' or h'hex', separated by commas"
            )
        hex_part, single, double = match.group(1), match.group(2), match.group(3)
        if hex_part is not None:
            try:
                elements.append(binascii.unhexlify("".join(hex_part.split())))
            except binascii.Error:
                raise ComponentIdError(
                    f"element {len(elements) + 1}: odd number of hex digits"
                ) from None
        else:
            raw = single if single is not None else double
            elements.append(re.sub(r"\\(.)", r"\1", raw).encode("utf-8"))
        position = match.end()
        if match.group(4) == "," and position >= len(body):
            raise ComponentIdError("an element is missing after the last comma")
    encode(elements)  # size checks
    return elements


def default_manifest_component_id(elements: list[bytes]) -> list[bytes]:
    """TEEP Appendix E: [..., 'ta'] -> [..., 'suit']; a one-element id gets 'suit' appended."""
    if len(elements) > 1:
        return list(elements[:-1]) + [MANIFEST_ID_SUFFIX]
    return list(elements) + [MANIFEST_ID_SUFFIX]
