"""TEEP messages: typed objects <-> the CBOR payload of a COSE_Sign1 / COSE_Sign.

draft-ietf-teep-protocol Section 4 defines five messages, each a CBOR array
`[type, options, ...]`; Appendix C has the complete CDDL (specs/cddl/draft-ietf-teep-protocol.cddl).
This module only handles that payload: COSE is apps.teep.wire.cose's job, SUIT envelopes and
reports are kept as the raw bytes they arrived in.

    decode(data, numbering) -> QueryRequest | QueryResponse | Update | Success | Error
    encode(message, numbering) -> bytes

Every number on the wire (message type, option label, err-code) comes from the Numbering table
passed in (DESIGN.md "Wire numbering"); this module writes none of its own.

Decoding checks every field against the CDDL (type, size, non-empty `[+ ...]` arrays) and the
Section 4 rules the CDDL cannot express, and raises TeepDecodeError(field, problem) for anything
else, with the field named in the draft's words ("options.token",
"options.requested-tc-list[0].component-id", "err-code"). Encoding writes the options in the order
of the draft's CDDL, which reproduces the Appendix D examples byte for byte; with
ENCODE_SELF_CHECK on (the test suite, DEBUG) it also decodes its own output and refuses (with
TeepEncodeError) any message that decode() would refuse.

Choices made where the draft leaves room (keep docs/ in step):

* CBOR: definite lengths only, no CBOR tags anywhere in the payload (the TEEP CDDL defines none;
  byte strings may contain tagged items, e.g. a COSE_Sign1_Tagged SUIT report), no duplicate map
  keys, nesting at most MAX_DEPTH, exactly one item with no trailing bytes.
* Options map: labels must be uints (`teep-option = (uint => any)`). A label that is unknown, or
  known but not defined for this message type, is an extension point (`$$...-extensions`): it is
  ignored and reported in `ignored_labels` (not encoded, not compared). (Read literally, the
  undefined sockets close the CDDL's maps and cddl-verifier rejects such labels.) So a message
  with the wrong numbering can decode with its fields ignored: the caller picks the numbering.
* requested-tc-info is a closed map in the CDDL (no extension socket): other labels are rejected.
* Type sockets are open, so any value of the socket's shape is accepted and matching is left to
  negotiation: a cipher suite is `[+ [int, int]]` (not only the two the draft defines, and ES256
  -7 / EdDSA -8 pass, DESIGN.md), a SUIT COSE profile is `[+ int]` (agents send two-element
  profiles, DESIGN.md), a freshness mechanism is any uint.
* Closed choices are enforced: err-code must be one of `err-code-values` of the numbering in use
  (an unregistered code such as 115688 is a TeepDecodeError; TEEP 4.6 lets receivers treat codes
  above 23 "as unknown errors", this codec drops the message instead), and data-item-requested
  may only set the four bits of `.bits data-item-requested`.
* SUIT_Component_Identifier is `[* bstr]` (SUIT manifest CDDL), so an empty one decodes.
* manifest-list items must hold one untagged CBOR map (SUIT_Envelope, TEEP 4.4), or a
  SUIT_Envelope_Tagged (tag 107 around a map): the TEEP CDDL says untagged, but AttesTAM and
  tamproto send the tagged form and agents should still install from them (DESIGN.md decision
  11). decode() accepts it (`is_tagged_envelope` tells the inspectors so), encode() refuses it,
  so this product never sends one. suit-reports items one CBOR map, array or tagged item
  (SUIT_Report_Protected / _Unprotected). Deeper checks belong to the SUIT layer.
* Section 4 rules beyond the CDDL: QueryRequest token present iff the attestation bit is clear;
  challenge and supported-freshness-mechanisms absent when it is clear (4.2); have-binary true
  needs tc-manifest-sequence-number (4.3). Conditional "MUST be returned" rules of the Error
  message (4.6) are left to the TAM, which can still act on the err-code.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import cbor2

from .errors import TeepDecodeError, WireError
from .numbering import CURRENT, Numbering

# data-item-requested bits, TEEP 4.2 and IANA registry 14.3.
ATTESTATION = 1
TRUSTED_COMPONENTS = 2
EXTENSIONS = 4
SUIT_REPORTS = 8
_DATA_ITEM_BITS = ATTESTATION | TRUSTED_COMPONENTS | EXTENSIONS | SUIT_REPORTS

# Freshness mechanisms, TEEP 9 and IANA registry 14.7.
FRESHNESS_NONCE = 0
FRESHNESS_TIMESTAMP = 1

# A TEEP payload nests 5 deep at most (message, options, tc-list, claims, component id);
# the rest is room for extensions.
MAX_DEPTH = 16

ComponentId = tuple[bytes, ...]  # SUIT_Component_Identifier, SUIT manifest 8.4.5.1
CipherOperation = tuple[int, int]  # [cose-type, cose-alg], TEEP 8.1
CipherSuite = tuple[CipherOperation, ...]
SuitCoseProfile = tuple[int, ...]  # [digest, auth, key-exchange, encryption], TEEP 8.2


class TeepEncodeError(WireError):
    """A message object that encode() refuses to put on the wire; same shape as TeepDecodeError."""

    def __init__(self, field: str, problem: str):
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


# --- message objects -------------------------------------------------------------------------


# Values _freeze() leaves as they are; checked by exact type, the cheap test on a path every
# message takes twice per policy check (built, then decoded on the other side).
_ATOMS = frozenset({bytes, int, str, bool, float, type(None)})


def _freeze(value: Any) -> Any:
    """Arrays become tuples (also inside maps): messages compare equal however they were built."""
    kind = type(value)
    if kind in _ATOMS:
        return value
    if kind is tuple or kind is list or isinstance(value, (list, tuple)):
        return tuple([item if type(item) in _ATOMS else _freeze(item) for item in value])
    if kind is dict:
        return {
            key: item if type(item) in _ATOMS else _freeze(item) for key, item in value.items()
        }
    return value


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


class _Frozen:
    def __post_init__(self):
        for name in _field_names(type(self)):
            value = getattr(self, name)
            if isinstance(value, (list, tuple)):
                object.__setattr__(self, name, _freeze(value))


def _ignored_labels():
    # Labels the decoder skipped; for audit only, never encoded or compared.
    return field(default=(), compare=False)


@dataclass(frozen=True)
class RequestedTcInfo(_Frozen):
    """requested-tc-info, TEEP 4.3."""

    component_id: ComponentId
    tc_manifest_sequence_number: int | None = None
    have_binary: bool | None = None


@dataclass(frozen=True, kw_only=True)
class QueryRequest(_Frozen):
    """TEEP 4.2, TAM -> Agent."""

    TYPE_NAME: ClassVar[str] = "query-request"
    token: bytes | None = None
    supported_freshness_mechanisms: tuple[int, ...] | None = None
    challenge: bytes | None = None
    versions: tuple[int, ...] | None = None
    attestation_payload_format: str | None = None
    attestation_payload: bytes | None = None
    suit_reports: tuple[bytes, ...] | None = None
    supported_teep_cipher_suites: tuple[CipherSuite, ...]
    supported_suit_cose_profiles: tuple[SuitCoseProfile, ...]
    data_item_requested: int
    ignored_labels: tuple[int, ...] = _ignored_labels()

    def encode(self, numbering: Numbering = CURRENT) -> bytes:
        return encode(self, numbering)


@dataclass(frozen=True, kw_only=True)
class QueryResponse(_Frozen):
    """TEEP 4.3, Agent -> TAM. tc-list items are system-property-claims maps as decoded."""

    TYPE_NAME: ClassVar[str] = "query-response"
    token: bytes | None = None
    selected_version: int | None = None
    attestation_payload_format: str | None = None
    attestation_payload: bytes | None = None
    suit_reports: tuple[bytes, ...] | None = None
    tc_list: tuple[dict, ...] | None = None
    requested_tc_list: tuple[RequestedTcInfo, ...] | None = None
    unneeded_manifest_list: tuple[ComponentId, ...] | None = None
    ext_list: tuple[int, ...] | None = None
    ignored_labels: tuple[int, ...] = _ignored_labels()

    def encode(self, numbering: Numbering = CURRENT) -> bytes:
        return encode(self, numbering)


@dataclass(frozen=True, kw_only=True)
class Update(_Frozen):
    """TEEP 4.4, TAM -> Agent. manifest-list items are the bytes of SUIT_Envelopes: untagged,
    or tagged (107) as received from other TAMs (decode only, see the module doc)."""

    TYPE_NAME: ClassVar[str] = "update"
    token: bytes | None = None
    unneeded_manifest_list: tuple[ComponentId, ...] | None = None
    manifest_list: tuple[bytes, ...] | None = None
    attestation_payload_format: str | None = None
    attestation_payload: bytes | None = None
    err_code: int | None = None
    err_msg: str | None = None
    err_lang: str | None = None
    ignored_labels: tuple[int, ...] = _ignored_labels()

    def encode(self, numbering: Numbering = CURRENT) -> bytes:
        return encode(self, numbering)


@dataclass(frozen=True, kw_only=True)
class Success(_Frozen):
    """TEEP 4.5, Agent -> TAM."""

    TYPE_NAME: ClassVar[str] = "success"
    token: bytes | None = None
    msg: str | None = None
    suit_reports: tuple[bytes, ...] | None = None
    ignored_labels: tuple[int, ...] = _ignored_labels()

    def encode(self, numbering: Numbering = CURRENT) -> bytes:
        return encode(self, numbering)


@dataclass(frozen=True, kw_only=True)
class Error(_Frozen):
    """TEEP 4.6, Agent -> TAM. err_code is the positional err-code after the options."""

    TYPE_NAME: ClassVar[str] = "error"
    token: bytes | None = None
    err_msg: str | None = None
    err_lang: str | None = None
    supported_teep_cipher_suites: tuple[CipherSuite, ...] | None = None
    supported_freshness_mechanisms: tuple[int, ...] | None = None
    supported_suit_cose_profiles: tuple[SuitCoseProfile, ...] | None = None
    challenge: bytes | None = None
    versions: tuple[int, ...] | None = None
    suit_reports: tuple[bytes, ...] | None = None
    err_code: int
    ignored_labels: tuple[int, ...] = _ignored_labels()

    def encode(self, numbering: Numbering = CURRENT) -> bytes:
        return encode(self, numbering)


TeepMessage = QueryRequest | QueryResponse | Update | Success | Error


def message_type_name(message: TeepMessage | type) -> str:
    """ "query-request", "query-response", "update", "success" or "error" (TEEP 4, IANA 14.2)."""
    return message.TYPE_NAME


# --- CBOR framing ----------------------------------------------------------------------------


def _scan(data: bytes, where: str, *, allow_tags: bool, map_sizes: list[int] | None = None) -> int:
    """Check that `data` is exactly one well-formed CBOR item under our rules; return its major
    type.

    Walks the headers only (RFC 8949 Section 3 / Appendix C), so cbor2 never sees anything
    we refuse. `map_sizes` collects the declared size of every map in byte order, for the
    duplicate-key check after cbor2 has built the dicts.
    """
    if not data:
        raise TeepDecodeError(where, "no CBOR data")
    end = len(data)

    def item(pos: int, depth: int) -> int:
        if pos >= end:
            raise TeepDecodeError(where, f"CBOR data ends early (offset {pos})")
        initial = data[pos]
        major, info = initial >> 5, initial & 0x1F
        pos += 1
        if info < 24:
            argument = info
        elif info <= 27:
            size = 1 << (info - 24)
            if pos + size > end:
                raise TeepDecodeError(where, f"CBOR data ends early (offset {pos})")
            argument = int.from_bytes(data[pos : pos + size], "big")
            pos += size
        elif info == 31 and major == 7:
            raise TeepDecodeError(where, f"unexpected CBOR break code (offset {pos - 1})")
        elif info == 31:
            raise TeepDecodeError(
                where, f"indefinite-length CBOR items are not accepted (offset {pos - 1})"
            )
        else:
            raise TeepDecodeError(
                where, f"malformed CBOR: reserved additional information {info} (offset {pos - 1})"
            )

        if major in (0, 1):
            return pos
        if major in (2, 3):
            if argument > end - pos:
                raise TeepDecodeError(where, f"CBOR string runs past the end (offset {pos})")
            if major == 3:
                try:
                    data[pos : pos + argument].decode("utf-8")
                except UnicodeDecodeError:
                    raise TeepDecodeError(
                        where, f"CBOR text string is not UTF-8 (offset {pos})"
                    ) from None
            return pos + argument
        if major in (4, 5, 6) and depth >= MAX_DEPTH:
            raise TeepDecodeError(where, f"CBOR nested deeper than {MAX_DEPTH} levels")
        if major in (4, 5):
            count = argument * (2 if major == 5 else 1)
            if count > end - pos:  # every item takes at least one byte
                raise TeepDecodeError(where, f"CBOR container runs past the end (offset {pos})")
            if major == 5 and map_sizes is not None:
                map_sizes.append(argument)
            for _ in range(count):
                pos = item(pos, depth + 1)
            return pos
        if major == 6:
            if not allow_tags:
                raise TeepDecodeError(
                    where, f"CBOR tag {argument} is not allowed here (offset {pos})"
                )
            return item(pos, depth + 1)
        # major 7: simple values and floats
        if info == 24 and argument < 32:
            raise TeepDecodeError(where, f"malformed CBOR simple value (offset {pos - 2})")
        return pos

    stop = item(0, 0)
    if stop != end:
        raise TeepDecodeError(where, f"{end - stop} bytes after the CBOR item")
    return data[0] >> 5


def _map_sizes(value: Any, out: list[int]) -> list[int]:
    kind = type(value)
    if kind in _ATOMS:
        pass
    elif kind is dict or isinstance(value, Mapping):  # a map used as a key is a FrozenDict
        out.append(len(value))
        for key, item in value.items():
            _map_sizes(key, out)
            _map_sizes(item, out)
    elif kind is list or isinstance(value, (list, tuple)):
        for item in value:
            _map_sizes(item, out)
    return out


def _load(data: bytes) -> Any:
    declared: list[int] = []
    _scan(data, "message", allow_tags=False, map_sizes=declared)
    try:
        value = cbor2.loads(data, max_depth=MAX_DEPTH + 1)
    except Exception as e:  # noqa: BLE001 - anything the CBOR library raises means bad input
        raise TeepDecodeError("message", f"not valid CBOR: {e}") from None
    # cbor2 keeps the last of two equal keys; a shorter dict than declared means a duplicate.
    if _map_sizes(value, []) != declared:
        raise TeepDecodeError("message", "a CBOR map has duplicate keys")
    return value


# --- field checks: decoded CBOR value -> field value, or TeepDecodeError -------------------------

Check = Callable[[Any, str, Numbering], Any]


def _describe(value: Any) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        bytes: "a byte string",
        str: "a text string",
        list: "an array",
        tuple: "an array",
        dict: "a map",
        float: "a float",
    }
    if type(value) is int and value < 0:
        return "a negative integer"
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _is_uint(value: Any) -> bool:
    return type(value) is int and value >= 0  # bool is not a CBOR integer


def _uint(limit: int | None = None) -> Check:
    """uint, or `uint .size 4` with limit 2**32."""

    def check(value, path, numbering):
        if not _is_uint(value):
            raise TeepDecodeError(path, f"must be an unsigned integer, not {_describe(value)}")
        if limit is not None and value >= limit:
            raise TeepDecodeError(path, f"must be less than {limit}")
        return value

    return check


def _int(value, path, numbering):
    if type(value) is not int:
        raise TeepDecodeError(path, f"must be an integer, not {_describe(value)}")
    return value


def _bool(value, path, numbering):
    if type(value) is not bool:
        raise TeepDecodeError(path, f"must be true or false, not {_describe(value)}")
    return value


def _bstr(min_size: int = 0, max_size: int | None = None) -> Check:
    def check(value, path, numbering):
        if type(value) is not bytes:
            raise TeepDecodeError(path, f"must be a byte string, not {_describe(value)}")
        if len(value) < min_size or (max_size is not None and len(value) > max_size):
            raise TeepDecodeError(
                path, f"must be {min_size}..{max_size} bytes long, not {len(value)}"
            )
        return value

    return check


def _text(min_size: int = 0, max_size: int | None = None) -> Check:
    """text; sizes count UTF-8 bytes (TEEP 4.4-4.6: "a maximum of 128 bytes")."""

    def check(value, path, numbering):
        if type(value) is not str:
            raise TeepDecodeError(path, f"must be a text string, not {_describe(value)}")
        size = len(value.encode("utf-8"))
        if size < min_size or (max_size is not None and size > max_size):
            raise TeepDecodeError(
                path, f"must be {min_size}..{max_size} bytes of UTF-8, not {size}"
            )
        return value

    return check


def _array(item: Check, *, min_items: int = 1, exact: int | None = None) -> Check:
    """`[+ item]` by default; `[* item]` with min_items=0."""

    def check(value, path, numbering):
        if type(value) not in (list, tuple):
            raise TeepDecodeError(path, f"must be an array, not {_describe(value)}")
        if exact is not None and len(value) != exact:
            raise TeepDecodeError(path, f"must have exactly {exact} elements, not {len(value)}")
        if len(value) < min_items:
            raise TeepDecodeError(path, f"must have at least {min_items} element(s)")
        return tuple(item(element, f"{path}[{i}]", numbering) for i, element in enumerate(value))

    return check


def _cbor_in_bstr(what: str, majors: tuple[int, ...]) -> Check:
    """bstr .cbor X, checked only as far as "one CBOR item of one of these major types"."""

    def check(value, path, numbering):
        _bstr()(value, path, numbering)
        if _scan(value, path, allow_tags=True) not in majors:
            raise TeepDecodeError(path, f"must contain {what}")
        return value

    return check


# SUIT manifest 8.4.5.1 / CDDL `SUIT_Component_Identifier = [* bstr]`.
_component_id = _array(_bstr(), min_items=0)
# TEEP 8.1: a cipher suite is `[+ [cose-type, cose-alg]]`.
_cipher_suite = _array(_array(_int, exact=2))
# TEEP 8.2: a SUIT COSE profile is an array of COSE algorithm ids; any length accepted (module doc).
_suit_cose_profile = _array(_int)
_version = _uint(1 << 32)  # version = uint .size 4; ext-info likewise
_token = _bstr(8, 64)
_challenge = _bstr(8, 512)
_msg_text = _text(1, 128)
_err_lang = _text(1, 35)
# SUIT manifest 8.2: SUIT_Envelope_Tagged = #6.107(SUIT_Envelope); 107 takes a one-byte argument.
_SUIT_ENVELOPE_TAG_HEAD = b"\xd8\x6b"


def is_tagged_envelope(item: bytes) -> bool:
    """True for a manifest-list item holding a SUIT_Envelope_Tagged (107) rather than the
    untagged SUIT_Envelope of the TEEP CDDL (4.4); for inspectors, which note it."""
    return (
        isinstance(item, (bytes, bytearray))
        and item[:2] == _SUIT_ENVELOPE_TAG_HEAD
        and len(item) > 2
        and item[2] >> 5 == 5
    )


def _suit_envelope(value, path, numbering):
    """TEEP 4.4 `bstr .cbor SUIT_Envelope`; tag 107 around the map tolerated (module doc)."""
    _bstr()(value, path, numbering)
    major = _scan(value, path, allow_tags=True)
    if major != 5 and not is_tagged_envelope(value):
        raise TeepDecodeError(
            path, "must contain a SUIT_Envelope (a CBOR map, untagged or with tag 107)"
        )
    return value

# SUIT_Report (map), COSE_Sign1 / COSE_Mac0 / COSE_Encrypt0 (array), or their tagged forms.
_suit_report = _cbor_in_bstr(
    "a SUIT report (a CBOR map, array or tagged COSE structure)", (4, 5, 6)
)


def _system_property_claims(value, path, numbering):
    """SUIT report Section 4:
    `{ system-component-id (0) => SUIT_Component_Identifier, + $$SUIT_Parameters }`."""
    if type(value) is not dict:
        raise TeepDecodeError(
            path, f"must be a map (system-property-claims), not {_describe(value)}"
        )
    for key in value:
        if type(key) is not int:
            raise TeepDecodeError(
                path, f"key {key!r} is not an integer (SUIT parameter labels are ints)"
            )
    if 0 not in value:
        raise TeepDecodeError(f"{path}.system-component-id", "is missing")
    _component_id(value[0], f"{path}.system-component-id", numbering)
    if len(value) < 2:
        raise TeepDecodeError(
            path, "must hold at least one SUIT parameter besides system-component-id"
        )
    return _freeze(value)


def _requested_tc_info(value, path, numbering):
    """TEEP 4.3 requested-tc-info; a closed map, labels from the numbering."""
    if type(value) is not dict:
        raise TeepDecodeError(path, f"must be a map (requested-tc-info), not {_describe(value)}")
    checks = {
        "component-id": _component_id,
        "tc-manifest-sequence-number": _uint(),
        "have-binary": _bool,
    }
    found = {}
    for label, item in value.items():
        name = numbering.label_names.get(label) if _is_uint(label) else None
        if name not in checks:
            raise TeepDecodeError(path, f"label {label!r} is not defined for requested-tc-info")
        found[name] = checks[name](item, f"{path}.{name}", numbering)
    if "component-id" not in found:
        raise TeepDecodeError(f"{path}.component-id", "is missing")
    info = RequestedTcInfo(
        found["component-id"], found.get("tc-manifest-sequence-number"), found.get("have-binary")
    )
    if info.have_binary is True and info.tc_manifest_sequence_number is None:
        raise TeepDecodeError(
            f"{path}.tc-manifest-sequence-number",
            "must be present when have-binary is true (TEEP 4.3)",
        )
    return info


def _requested_tc_info_to_wire(infos, numbering):
    out = []
    for info in infos:
        if not isinstance(info, RequestedTcInfo):
            out.append(info)  # decode() will say what is wrong with it
            continue
        entry = {numbering.label("component-id"): info.component_id}
        if info.tc_manifest_sequence_number is not None:
            entry[numbering.label("tc-manifest-sequence-number")] = info.tc_manifest_sequence_number
        if info.have_binary is not None:
            entry[numbering.label("have-binary")] = info.have_binary
        out.append(entry)
    return out


def _err_code(value, path, numbering):
    """err-code-values (TEEP 4.6): only the codes the numbering defines; 0 is reserved."""
    if not _is_uint(value):
        raise TeepDecodeError(path, f"must be an unsigned integer, not {_describe(value)}")
    if value not in numbering.err_code_names:
        known = ", ".join(str(code) for code in sorted(numbering.err_code_names))
        raise TeepDecodeError(
            path, f"{value} is not an err-code of the {numbering.name} numbering ({known})"
        )
    return value


def _data_item_requested(value, path, numbering):
    """uint .bits data-item-requested (TEEP 4.2)."""
    _uint()(value, path, numbering)
    if value & ~_DATA_ITEM_BITS:
        raise TeepDecodeError(
            path,
            f"sets bits other than attestation, trusted-components, extensions, suit-reports"
            f" ({value})",
        )
    return value


# --- the per-message field tables (TEEP 4.2-4.6, in CDDL order) ----------------------------------


@dataclass(frozen=True)
class _Field:
    attr: str  # attribute of the message class
    name: str  # the draft's name; for options also the label's name in the Numbering
    check: Check
    to_wire: Callable[[Any, Numbering], Any] = lambda value, numbering: value


@dataclass(frozen=True)
class _Spec:
    cls: type
    options: tuple[_Field, ...]
    positional: tuple[_Field, ...] = ()  # elements after the options map


def _f(name: str, check: Check, **kw) -> _Field:
    return _Field(name.replace("-", "_"), name, check, **kw)


_SPECS: dict[str, _Spec] = {
    spec.cls.TYPE_NAME: spec
    for spec in (
        _Spec(
            QueryRequest,
            options=(
                _f("token", _token),
                _f("supported-freshness-mechanisms", _array(_uint())),
                _f("challenge", _challenge),
                _f("versions", _array(_version)),
                _f("attestation-payload-format", _text()),
                _f("attestation-payload", _bstr()),
                _f("suit-reports", _array(_suit_report)),
            ),
            positional=(
                _f("supported-teep-cipher-suites", _array(_cipher_suite)),
                _f("supported-suit-cose-profiles", _array(_suit_cose_profile)),
                _f("data-item-requested", _data_item_requested),
            ),
        ),
        _Spec(
            QueryResponse,
            options=(
                _f("token", _token),
                _f("selected-version", _version),
                _f("attestation-payload-format", _text()),
                _f("attestation-payload", _bstr()),
                _f("suit-reports", _array(_suit_report)),
                # TEEP 4.3 says tc-list MUST be present when trusted-components was requested,
                # and the CDDL says [+ ...]: an agent holding nothing cannot satisfy both. We
                # accept [] as "nothing installed" (DESIGN.md: agents send empty arrays).
                _f("tc-list", _array(_system_property_claims, min_items=0)),
                _f(
                    "requested-tc-list",
                    _array(_requested_tc_info),
                    to_wire=_requested_tc_info_to_wire,
                ),
                _f("unneeded-manifest-list", _array(_component_id)),
                # Same conflict as tc-list: MUST be present when extensions was requested
                # (4.3), and this document defines no extension, so [] must be acceptable.
                _f("ext-list", _array(_version, min_items=0)),
            ),
        ),
        _Spec(
            Update,
            options=(
                _f("token", _token),
                _f("unneeded-manifest-list", _array(_component_id)),
                _f("manifest-list", _array(_suit_envelope)),
                _f("attestation-payload-format", _text()),
                _f("attestation-payload", _bstr()),
                _f("err-code", _err_code),
                _f("err-msg", _msg_text),
                _f("err-lang", _err_lang),
            ),
        ),
        _Spec(
            Success,
            options=(
                _f("token", _token),
                _f("msg", _msg_text),
                _f("suit-reports", _array(_suit_report)),
            ),
        ),
        _Spec(
            Error,
            options=(
                _f("token", _token),
                _f("err-msg", _msg_text),
                _f("err-lang", _err_lang),
                _f("supported-teep-cipher-suites", _array(_cipher_suite)),
                _f("supported-freshness-mechanisms", _array(_uint())),
                _f("supported-suit-cose-profiles", _array(_suit_cose_profile)),
                _f("challenge", _challenge),
                _f("versions", _array(_version)),
                _f("suit-reports", _array(_suit_report)),
            ),
            positional=(_f("err-code", _err_code),),
        ),
    )
}
_SPEC_BY_CLASS = {spec.cls: spec for spec in _SPECS.values()}


def _check_query_request(message: QueryRequest) -> None:
    """TEEP 4.2 rules the CDDL cannot say (the draft's own D.1 example breaks the first one)."""
    attestation = bool(message.data_item_requested & ATTESTATION)
    if attestation and message.token is not None:
        raise TeepDecodeError(
            "options.token",
            "must be absent when the attestation bit of data-item-requested is set (TEEP 4.2)",
        )
    if not attestation and message.token is None:
        raise TeepDecodeError(
            "options.token",
            "must be present when the attestation bit of data-item-requested is clear (TEEP 4.2)",
        )
    if not attestation and message.challenge is not None:
        raise TeepDecodeError(
            "options.challenge",
            "must be absent when the attestation bit of data-item-requested is clear (TEEP 4.2)",
        )
    if not attestation and message.supported_freshness_mechanisms is not None:
        raise TeepDecodeError(
            "options.supported-freshness-mechanisms",
            "must be absent when the attestation bit of data-item-requested is clear (TEEP 4.2)",
        )


# --- the two entry points --------------------------------------------------------------------


def decode(data: bytes, numbering: Numbering = CURRENT) -> TeepMessage:
    """Decode and validate a TEEP message payload.

    Raises TeepDecodeError on anything the draft does not allow.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"decode() takes bytes, not {type(data).__name__}")
    item = _load(bytes(data))
    if type(item) is not list or len(item) < 2:
        raise TeepDecodeError(
            "message", "a TEEP message is a CBOR array [type, options, ...] (TEEP 4)"
        )
    type_number = item[0]
    if not _is_uint(type_number):
        raise TeepDecodeError("type", f"must be an unsigned integer, not {_describe(type_number)}")
    type_name = numbering.message_type_names.get(type_number)
    if type_name is None:
        raise TeepDecodeError(
            "type", f"{type_number} is not a TEEP message type in the {numbering.name} numbering"
        )
    spec = _SPECS[type_name]
    size = 2 + len(spec.positional)
    if len(item) != size:
        raise TeepDecodeError(
            "message", f"{type_name} must be an array of {size} elements, not {len(item)}"
        )

    options = item[1]
    if type(options) is not dict:
        raise TeepDecodeError("options", f"must be a map, not {_describe(options)}")
    by_label = {numbering.label(f.name): f for f in spec.options}
    values: dict[str, Any] = {}
    ignored = []
    for label, value in options.items():
        if not _is_uint(label):
            raise TeepDecodeError("options", f"label {label!r} is not an unsigned integer")
        option = by_label.get(label)
        if option is None:
            ignored.append(label)  # extension point, or defined for another message type
            continue
        values[option.attr] = option.check(value, f"options.{option.name}", numbering)
    for positional, value in zip(spec.positional, item[2:], strict=True):
        values[positional.attr] = positional.check(value, positional.name, numbering)

    message = spec.cls(**values, ignored_labels=tuple(ignored))
    if isinstance(message, QueryRequest):
        _check_query_request(message)
    return message


# encode() decodes its own output and raises TeepEncodeError if decode() refuses it: one set of
# rules for both directions, never send what we would not accept. It catches encoder bugs, not
# hostile input (what is encoded is ours), and doubles encode()'s cost on the policy check's
# path (issue 11), so the Django app keeps it on only for the test suite and DEBUG
# (apps/teep/apps.py); code using this package on its own gets it on.
ENCODE_SELF_CHECK = True


def encode(message: TeepMessage, numbering: Numbering = CURRENT) -> bytes:
    """The CBOR payload for `message`, options in CDDL order.

    Raises TeepEncodeError for a SUIT_Envelope_Tagged in manifest-list, a value CBOR cannot
    encode, and (with ENCODE_SELF_CHECK) anything decode() would refuse in the result.
    """
    spec = _SPEC_BY_CLASS.get(type(message))
    if spec is None:
        raise TypeError(f"not a TEEP message: {type(message).__name__}")
    options = {}
    for option in spec.options:
        value = getattr(message, option.attr)
        if value is not None:
            options[numbering.label(option.name)] = option.to_wire(value, numbering)
    item = [numbering.message_type(spec.cls.TYPE_NAME), options]
    item += [
        positional.to_wire(getattr(message, positional.attr), numbering)
        for positional in spec.positional
    ]
    for index, envelope in enumerate(getattr(message, "manifest_list", None) or ()):
        if is_tagged_envelope(envelope):
            raise TeepEncodeError(
                f"options.manifest-list[{index}]",
                "is a SUIT_Envelope_Tagged (107); TEEP 4.4 carries untagged envelopes",
            )
    try:
        data = cbor2.dumps(item)
    except Exception as e:  # noqa: BLE001 - a value cbor2 cannot encode
        raise TeepEncodeError("message", f"cannot be encoded as CBOR: {e}") from None
    if ENCODE_SELF_CHECK:
        try:
            decode(data, numbering)
        except TeepDecodeError as e:
            raise TeepEncodeError(e.field, e.problem) from None
    return data


__all__ = [
    "ATTESTATION",
    "ENCODE_SELF_CHECK",
    "EXTENSIONS",
    "FRESHNESS_NONCE",
    "FRESHNESS_TIMESTAMP",
    "MAX_DEPTH",
    "SUIT_REPORTS",
    "TRUSTED_COMPONENTS",
    "CipherSuite",
    "ComponentId",
    "Error",
    "QueryRequest",
    "QueryResponse",
    "RequestedTcInfo",
    "Success",
    "SuitCoseProfile",
    "TeepEncodeError",
    "TeepMessage",
    "Update",
    "decode",
    "encode",
    "is_tagged_envelope",
    "message_type_name",
]


def peek_token(data: bytes, numbering: Numbering = CURRENT) -> bytes | None:
    """The token of a not-yet-authenticated payload, or None; never raises.

    Only for finding which key should verify a message whose COSE header names no kid
    (agents from older drafts, DESIGN.md); the message is decoded properly after the
    signature verified.
    """
    try:
        value = _load(data)
    except TeepDecodeError:
        return None
    if not isinstance(value, list) or len(value) < 2 or not isinstance(value[1], dict):
        return None
    token = value[1].get(numbering.label("token"))
    return token if isinstance(token, bytes) and 8 <= len(token) <= 64 else None
