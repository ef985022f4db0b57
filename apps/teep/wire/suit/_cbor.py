"""CBOR helpers shared by the SUIT modules: strict decoding and deterministic encoding.

cbor2.loads ignores trailing bytes and keeps the last of duplicate map keys; a parser that
checks signatures over bytes must not see something different from what was signed, so every
SUIT item is decoded here, once, and must be exactly one item with nothing after it.
"""

import io
from typing import Any

import cbor2

from apps.teep.wire.errors import SuitError

# Deep nesting is legal CBOR but no SUIT structure comes close; cbor2 5.9's own limit is 400.
_MAX_DEPTH = 64

# Tag 28 (shareable, RFC 8949 3.4 / IANA) with each head size CBOR allows. A shared reference
# (tag 29) can only point at a value marked by it, so without one of these byte sequences the
# decoded item shares nothing and cannot be cyclic.
_SHAREABLE_TAG_HEADS = (
    b"\xd8\x1c",
    b"\xd9\x00\x1c",
    b"\xda\x00\x00\x00\x1c",
    b"\xdb\x00\x00\x00\x00\x00\x00\x00\x1c",
)


def decode_exact(data: object, what: str) -> Any:
    """Decode exactly one CBOR item from `data`; SuitError naming `what` otherwise."""
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise SuitError(f"{what}: expected bytes, got {type(data).__name__}")
    if not data:
        raise SuitError(f"{what}: empty")
    stream = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(stream, max_depth=_MAX_DEPTH).decode()
    except Exception as exc:  # cbor2 raises several types (decode, value, overflow, recursion)
        raise SuitError(f"{what}: not valid CBOR ({exc})") from None
    if stream.tell() != len(data):
        raise SuitError(f"{what}: {len(data) - stream.tell()} bytes after the CBOR item")
    if type(value).__name__ == "break_marker_type":
        raise SuitError(f"{what}: not valid CBOR (a lone break byte)")
    if any(head in data for head in _SHAREABLE_TAG_HEADS):
        try:
            # Shared-value tags (28/29) can build cyclic structures, which no SUIT item is;
            # re-encoding finds them. Only then: it cost three encodings per policy check.
            cbor2.dumps(value)
        except Exception:
            raise SuitError(
                f"{what}: not valid SUIT CBOR (cyclic or unencodable structure)"
            ) from None
    return value


def decode_deterministic(data: object, what: str) -> Any:
    """decode_exact, and the item must re-encode to the same bytes.

    SUIT manifest 8.1 requires canonical CBOR; the check also catches duplicate map keys
    (which cbor2 silently merges), indefinite lengths and non-shortest integer heads.
    """
    value = decode_exact(data, what)
    if cbor2.dumps(value) != data:
        raise SuitError(
            f"{what}: not in deterministic CBOR encoding "
            "(duplicate map keys, indefinite or non-shortest lengths, or unexpected tags)"
        )
    return value


def _sort_key(key: Any) -> bytes:
    return cbor2.dumps(key)


def deterministic(value: Any) -> Any:
    """Copy of `value` with every map ordered by the bytewise order of its encoded keys.

    RFC 8949 4.2.1 core deterministic ordering (cbor2's canonical=True sorts length-first,
    RFC 7049 style, which differs for keys such as 24 and -1).
    """
    if isinstance(value, dict):
        items = [(k, deterministic(v)) for k, v in value.items()]
        items.sort(key=lambda item: _sort_key(item[0]))
        return dict(items)
    if isinstance(value, (list, tuple)):
        return [deterministic(v) for v in value]
    if isinstance(value, cbor2.CBORTag):
        return cbor2.CBORTag(value.tag, deterministic(value.value))
    return value


def encode(value: Any) -> bytes:
    """Deterministic CBOR encoding of plain Python values (dict, list, int, bytes, str, ...)."""
    return cbor2.dumps(deterministic(value))


def is_uint(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**64


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -(2**64) <= value < 2**64
