"""SUIT reports (draft-ietf-suit-report-19): parse what agents send, build them for the simulator.

TEEP 4.2-4.6: suit-reports = [+ bstr .cbor (SUIT_Report_Protected / SUIT_Report_Unprotected)].
Containers (report 8): a bare SUIT_Report map; a COSE_Sign1 (tagged 18 or not) whose attached
payload is the report (or an encrypted report); COSE_Mac0 is refused as unsupported (no TEEP
party shares a MAC key with the TAM). Encrypted reports: COSE_Encrypt0 under a shared key (the
report CDDL) or COSE_Encrypt with an ES-DH recipient and KDF "SUIT Report Encryption" (TEEP 8.2).

The TEEP draft's Appendix F examples use an older layout (keys 1/2/4, map-shaped records) and
are refused: "suit-reference (99) missing".
"""

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import EllipsisType, MappingProxyType
from typing import Any

import cbor2

from apps.teep.wire import cose
from apps.teep.wire.errors import CoseError, SuitError
from apps.teep.wire.keys import TeepKey
from apps.teep.wire.suit import constants as c
from apps.teep.wire.suit import encryption
from apps.teep.wire.suit._cbor import decode_exact, encode, is_int, is_uint
from apps.teep.wire.suit.envelope import (
    Command,
    Envelope,
    SuitDigest,
    _parse_digest,
    _parse_parameters,
    component_id_to_json,
    digest_to_json,
    value_to_json,
)

_HMAC_ALGORITHMS = {4, 5, 6, 7}  # RFC 9053 3.1: HMAC 256/64, 256/256, 384/384, 512/512


# --- data model -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SuitRecord:
    """SUIT_Record (report 3): where in which manifest the processor was, and what it measured."""

    manifest_id: tuple[int, ...]  # walk of the dependency tree; () = the root manifest
    section: int  # manifest key of the command sequence (7 validate, 20 install, ...)
    offset: int  # bytes into that command sequence
    component_index: int
    properties: Mapping[str, Any] = field(default_factory=dict)  # SUIT parameters, readable names
    extensions: tuple = ()

    @property
    def section_name(self) -> str:
        return c.COMMAND_SEQUENCE_NAMES.get(self.section, f"section({self.section})")


@dataclass(frozen=True)
class SystemProperties:
    """system-property-claims (report 4.1): measured parameters of one component."""

    component_id: tuple[bytes, ...]
    properties: Mapping[str, Any]


@dataclass(frozen=True)
class ReportFailure:
    """The failure form of suit-report-result (report 4.2)."""

    code: int  # implementation-specific, for debugging
    reason: int  # SUIT_Report_Reasons
    record: SuitRecord

    @property
    def reason_name(self) -> str:
        return c.REPORT_REASON_NAMES.get(self.reason, f"reason({self.reason})")


@dataclass(frozen=True)
class SuitReport:
    manifest_uri: str
    manifest_digest: SuitDigest
    nonce: bytes | None
    records: tuple[SuitRecord | SystemProperties, ...]
    failure: ReportFailure | None  # None = suit-report-result true
    capability_report: Mapping[str, Any] | None = None
    extensions: Mapping[int, Any] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return self.failure is None


@dataclass(frozen=True)
class SuitReportResult:
    """A parsed report and how it was protected.

    signature: "verified" (COSE_Sign1 checked with a key given), "not verified" (signed, no
    key given), "unsigned" (a bare or only encrypted report). `kid` is what the COSE header
    claims; `verified_by` is the key, among those given, whose check passed: the TAM compares it
    with the agent's keys (libcsuit linked with libteep signs reports with the TEEP key).
    """

    report: SuitReport
    container: str  # "SUIT_Report", "COSE_Sign1", "COSE_Sign1(COSE_Encrypt0)", "COSE_Encrypt", ...
    signature: str
    alg: int | None = None
    kid: bytes | None = None
    encrypted: bool = False
    verified_by: TeepKey | None = None

    # The report's fields, for callers that do not care about the container.
    @property
    def manifest_uri(self) -> str:
        return self.report.manifest_uri

    @property
    def manifest_digest(self) -> SuitDigest:
        return self.report.manifest_digest

    @property
    def nonce(self) -> bytes | None:
        return self.report.nonce

    @property
    def records(self) -> tuple[SuitRecord | SystemProperties, ...]:
        return self.report.records

    @property
    def success(self) -> bool:
        return self.report.success

    @property
    def failure(self) -> ReportFailure | None:
        return self.report.failure

    @property
    def capability_report(self) -> Mapping[str, Any] | None:
        return self.report.capability_report


# --- parsing ----------------------------------------------------------------------------------


def parse_report(
    data: bytes,
    *,
    key: TeepKey | None = None,
    keys: Sequence[TeepKey] = (),
    decrypt_key: encryption.RecipientPrivateKey | None = None,
    context_other: bytes = c.CONTEXT_SUIT_REPORT,
) -> SuitReportResult:
    """Parse one element of TEEP suit-reports.

    `key`, or any of `keys`, verifies a COSE_Sign1 report: SuitError if none does; the one that
    did is `verified_by`. Keys named by the header's kid are tried first; a report without a kid
    (agents from older drafts) is tried with each. Without keys the signature is reported as
    "not verified". `decrypt_key` opens an encrypted report: bytes for COSE_Encrypt0, the TAM's
    private key for an ES-DH COSE_Encrypt (`context_other` = TEEP 8.2).
    """
    item = decode_exact(data, "SUIT report")
    kind = _container_kind(item)
    candidates = ([key] if key is not None else []) + list(keys)
    if kind == "COSE_Sign1":
        message = _report_sign1(data)
        info = message.signatures[0]
        status, verified_by = "not verified", None
        if candidates:
            verified_by = _verify_report(message, candidates)
            status = "verified"
        inner = decode_exact(message.payload, "SUIT report COSE_Sign1 payload")
        inner_kind = _container_kind(inner)
        if inner_kind == "SUIT_Report":
            report, encrypted, container = _parse_report_map(inner), False, "COSE_Sign1"
        elif inner_kind in ("COSE_Encrypt0", "COSE_Encrypt"):
            report = _decrypt_report(inner_kind, message.payload, decrypt_key, context_other)
            encrypted, container = True, f"COSE_Sign1({inner_kind})"
        else:
            raise SuitError(f"SUIT report COSE_Sign1 payload is a {inner_kind}, not a SUIT_Report")
        return SuitReportResult(
            report, container, status, info.alg, info.kid, encrypted, verified_by
        )
    if kind == "SUIT_Report":
        return SuitReportResult(_parse_report_map(item), "SUIT_Report", "unsigned")
    if kind in ("COSE_Encrypt0", "COSE_Encrypt"):
        report = _decrypt_report(kind, data, decrypt_key, context_other)
        return SuitReportResult(report, kind, "unsigned", encrypted=True)
    if kind == "COSE_Mac0":
        raise SuitError("SUIT report in COSE_Mac0 is not supported")
    raise SuitError(f"not a SUIT report: {kind}")


def verify_report(data: bytes, keys: Sequence[TeepKey]) -> TeepKey:
    """The key among `keys` that verifies this COSE_Sign1 SUIT report; SuitError if none does,
    or if the report is not signed (a bare or only encrypted report)."""
    kind = _container_kind(decode_exact(data, "SUIT report"))
    if kind != "COSE_Sign1":
        raise SuitError(f"SUIT report is not signed ({kind})")
    return _verify_report(_report_sign1(data), list(keys))


def _report_sign1(data: bytes) -> cose.CoseMessage:
    try:
        message = cose.parse(data)
    except CoseError as exc:
        raise SuitError(f"SUIT report COSE_Sign1: {exc}") from None
    if message.signatures[0].alg in _HMAC_ALGORITHMS:
        raise SuitError("SUIT report in COSE_Mac0 is not supported (untagged, HMAC algorithm)")
    if message.payload is None:
        raise SuitError(
            "SUIT report COSE_Sign1 payload is detached; the report belongs inside (report 8)"
        )
    return message


def _verify_report(message: cose.CoseMessage, keys: list[TeepKey]) -> TeepKey:
    if not keys:
        raise SuitError("no key given to verify the SUIT report with")
    kid = message.signatures[0].kid
    problems = []
    for candidate in sorted(keys, key=lambda k: k.kid != kid):  # the named key first
        try:
            cose.verify(message, candidate)
        except CoseError as exc:
            problems.append(str(exc))
            continue
        return candidate
    detail = "; ".join(dict.fromkeys(problems))
    given = "the given key" if len(keys) == 1 else f"any of the {len(keys)} given keys"
    raise SuitError(f"SUIT report signature does not verify with {given}: {detail}")


def _container_kind(item: object) -> str:
    if isinstance(item, dict):
        return "SUIT_Report"
    if isinstance(item, cbor2.CBORTag):
        names = {
            c.TAG_COSE_SIGN1: "COSE_Sign1",
            c.TAG_COSE_MAC0: "COSE_Mac0",
            c.TAG_COSE_ENCRYPT0: "COSE_Encrypt0",
            c.TAG_COSE_ENCRYPT: "COSE_Encrypt",
        }
        return names.get(item.tag, f"CBOR tag {item.tag}")
    if isinstance(item, list):
        if len(item) == 3:
            return "COSE_Encrypt0"
        if len(item) == 4:
            return "COSE_Encrypt" if isinstance(item[3], list) else "COSE_Sign1"
        return f"array of {len(item)} elements"
    return f"CBOR {type(item).__name__}"


def _decrypt_report(
    kind: str, data: bytes, decrypt_key: object, context_other: bytes
) -> SuitReport:
    if decrypt_key is None:
        raise SuitError(f"SUIT report is encrypted ({kind}) and no decryption key was given")
    if kind == "COSE_Encrypt0":
        if not isinstance(decrypt_key, (bytes, bytearray)):
            raise SuitError(
                "an encrypted SUIT report in COSE_Encrypt0 needs a symmetric key (bytes)"
            )
        plaintext = encryption.decrypt_cose_encrypt0(data, bytes(decrypt_key))
    else:
        plaintext = encryption.decrypt_cose_encrypt(data, decrypt_key, context_other=context_other)
    # report 8: the plaintext is "bstr .cbor SUIT_Report"; accept the bare map as well.
    inner = decode_exact(plaintext, "decrypted SUIT report")
    if isinstance(inner, bytes):
        inner = decode_exact(inner, "decrypted SUIT report")
    if not isinstance(inner, dict):
        raise SuitError("decrypted SUIT report is not a SUIT_Report map")
    return _parse_report_map(inner)


def _parse_report_map(report: dict) -> SuitReport:
    for key in report:
        if not is_int(key):
            raise SuitError(f"SUIT_Report key {key!r} is not an integer")
    if c.REPORT_REFERENCE not in report:
        hint = ""
        if 1 in report or (c.REPORT_RECORDS not in report and c.REPORT_RESULT not in report):
            hint = " (keys 1/2/4 are the layout of TEEP Appendix F, older than suit-report-19)"
        raise SuitError(f"not a SUIT_Report: suit-reference (99) missing{hint}")
    reference = report[c.REPORT_REFERENCE]
    if not isinstance(reference, list) or len(reference) != 2 or not isinstance(reference[0], str):
        raise SuitError("suit-reference is not [manifest-uri (text), manifest-digest]")
    manifest_digest = _parse_digest(reference[1], "suit-reference manifest-digest")
    nonce = report.get(c.REPORT_NONCE)
    if nonce is not None and not isinstance(nonce, bytes):
        raise SuitError("suit-report-nonce is not a byte string")
    if c.REPORT_RECORDS not in report:
        raise SuitError("SUIT_Report has no suit-report-records (3)")
    raw_records = report[c.REPORT_RECORDS]
    if not isinstance(raw_records, list):
        raise SuitError("suit-report-records is not an array")
    records: list[SuitRecord | SystemProperties] = []
    for index, raw in enumerate(raw_records):
        where = f"suit-report-records[{index}]"
        if isinstance(raw, dict):
            records.append(_parse_system_properties(raw, where))
        else:
            records.append(_parse_record(raw, where))
    if c.REPORT_RESULT not in report:
        raise SuitError("SUIT_Report has no suit-report-result (4)")
    result = report[c.REPORT_RESULT]
    failure = None
    if result is not True:
        if not isinstance(result, dict):
            raise SuitError("suit-report-result is neither true nor a failure map")
        code = result.get(c.REPORT_RESULT_CODE)
        reason = result.get(c.REPORT_RESULT_REASON)
        if not is_int(code):
            raise SuitError("suit-report-result-code (5) is missing or not an integer")
        if not is_uint(reason):
            raise SuitError(
                "suit-report-result-reason (7) is missing or not a SUIT_Report_Reasons value"
            )
        if c.REPORT_RESULT_RECORD not in result:
            raise SuitError("suit-report-result-record (6) is missing")
        record = _parse_record(result[c.REPORT_RESULT_RECORD], "suit-report-result-record")
        failure = ReportFailure(code, reason, record)
    capability = None
    if c.REPORT_CAPABILITY_REPORT in report:
        capability = _parse_capability_report(report[c.REPORT_CAPABILITY_REPORT])
    known = {
        c.REPORT_REFERENCE,
        c.REPORT_NONCE,
        c.REPORT_RECORDS,
        c.REPORT_RESULT,
        c.REPORT_CAPABILITY_REPORT,
    }
    extensions = {key: value for key, value in report.items() if key not in known}
    return SuitReport(
        manifest_uri=reference[0],
        manifest_digest=manifest_digest,
        nonce=nonce,
        records=tuple(records),
        failure=failure,
        capability_report=capability,
        extensions=MappingProxyType(extensions),
    )


def _parse_record(raw: object, where: str) -> SuitRecord:
    if not isinstance(raw, list) or len(raw) < 5:
        raise SuitError(f"{where} is not a SUIT_Record (an array of at least 5 elements)")
    manifest_id, section, offset, component_index, properties = raw[:5]
    if not isinstance(manifest_id, list) or not all(is_uint(step) for step in manifest_id):
        raise SuitError(f"{where} manifest-id is not an array of unsigned integers")
    if not is_int(section):
        raise SuitError(f"{where} manifest-section is not an integer")
    if not is_uint(offset):
        raise SuitError(f"{where} section-offset is not an unsigned integer")
    if not is_uint(component_index):
        raise SuitError(f"{where} component-index is not an unsigned integer")
    if not isinstance(properties, dict):
        raise SuitError(f"{where} properties is not a map")
    parsed = (
        _parse_parameters(properties, f"{where} properties") if properties else MappingProxyType({})
    )
    return SuitRecord(tuple(manifest_id), section, offset, component_index, parsed, tuple(raw[5:]))


def _parse_system_properties(raw: dict, where: str) -> SystemProperties:
    component_id = raw.get(c.SYSTEM_COMPONENT_ID)
    if not isinstance(component_id, list) or not all(
        isinstance(part, bytes) for part in component_id
    ):
        raise SuitError(f"{where}: system-property-claims without a system-component-id (0)")
    rest = {key: value for key, value in raw.items() if key != c.SYSTEM_COMPONENT_ID}
    if not rest:
        raise SuitError(f"{where}: system-property-claims with no property")
    return SystemProperties(tuple(component_id), _parse_parameters(rest, where))


def _parse_capability_report(raw: object) -> Mapping[str, Any]:
    if not isinstance(raw, dict):
        raise SuitError("suit-report-capability-report is not a map")
    result: dict[str, Any] = {}
    for key, value in raw.items():
        if is_int(key):
            name = c.CAPABILITY_NAMES.get(key, f"capability({key})")
        elif isinstance(key, tuple) and key and all(is_int(step) for step in key):
            name = "[" + ", ".join(str(step) for step in key) + "]"
        else:
            raise SuitError(
                f"capability report key {key!r} is neither an integer nor an array of integers"
            )
        if not isinstance(value, list) or not value:
            raise SuitError(f"capability report {name} is not a non-empty array")
        if key == 1:
            components = []
            for entry in value:
                if not isinstance(entry, list):
                    raise SuitError("component capability is not an array")
                body = entry[:-1] if entry and entry[-1] is True else entry
                if not all(isinstance(part, bytes) for part in body):
                    raise SuitError("component capability is not [* bstr, ? true]")
                components.append(tuple(entry))
            result[name] = tuple(components)
        else:
            if not all(is_int(item) for item in value):
                raise SuitError(f"capability report {name} is not an array of integers")
            result[name] = tuple(value)
    for required in c.CAPABILITY_REQUIRED:
        if c.CAPABILITY_NAMES[required] not in result:
            raise SuitError(
                f"capability report lacks {c.CAPABILITY_NAMES[required]} ({required}), report 6"
            )
    return MappingProxyType(result)


# --- the failing command, given the manifest --------------------------------------------------


def command_at(envelope: Envelope, record: SuitRecord) -> tuple[int, Command] | None:
    """The (index, command) of the root manifest's sequence that `record` points at, if any.

    report 3: section-offset = bytes into the command sequence; section 3 (common) names the
    shared sequence. We count from the first byte
    of the sequence's CBOR array (the content of its bstr) and return the command whose id or
    argument covers that byte. Records of dependencies (non-empty manifest-id) give None.
    """
    if record.manifest_id:
        return None
    if record.section == c.MANIFEST_COMMON:
        # The shared sequence lives in common (manifest 8.4.5); processors report it there.
        sequence = envelope.manifest.common.shared_sequence
        manifest = decode_exact(envelope.manifest_bytes, "manifest")
        common = decode_exact(manifest[c.MANIFEST_COMMON], "common")
        raw = common.get(c.COMMON_SHARED_SEQUENCE)
    else:
        name = c.COMMAND_SEQUENCE_NAMES.get(record.section)
        sequence = envelope.manifest.command_sequences.get(name) if name else None
        if sequence is None:
            return None
        raw = envelope.severable_members.get(name)
        if raw is None:
            manifest = decode_exact(envelope.manifest_bytes, "manifest")
            raw = manifest.get(record.section)
    if not sequence or not isinstance(raw, bytes):
        return None
    starts = _command_offsets(raw)
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < len(starts) else len(raw)
        if start <= record.offset < end and index < len(sequence):
            return index, sequence[index]
    return None


def _command_offsets(raw: bytes) -> list[int]:
    stream = io.BytesIO(raw)
    first = stream.read(1)[0]
    info = first & 0x1F
    if info >= 24:
        stream.read(1 << (info - 24))
    decoder = cbor2.CBORDecoder(stream)
    offsets = []
    while stream.tell() < len(raw):
        offsets.append(stream.tell())
        decoder.decode()  # command id
        decoder.decode()  # argument
    return offsets


# --- building ---------------------------------------------------------------------------------


def build_report(
    *,
    manifest_digest: SuitDigest,
    manifest_uri: str = "",
    nonce: bytes | None = None,
    records: Sequence[SuitRecord | SystemProperties] = (),
    failure: ReportFailure | None = None,
    capability_report: Mapping[str | int, Sequence[Any]] | None = None,
    signing_key: TeepKey | None = None,
    alg: int | None = None,
    kid: bytes | None | EllipsisType = ...,
    tagged: bool = True,
    encrypt_to: encryption.RecipientPublicKey | None = None,
    context_other: bytes = c.CONTEXT_SUIT_REPORT,
) -> bytes:
    """A SUIT report as a TEEP Agent sends it: bare, or COSE_Sign1 with the report attached.

    `failure` None makes suit-report-result true. `encrypt_to` (the TAM's P-256 key) puts the
    report in an ES-DH COSE_Encrypt (TEEP 8.2, "SUIT Report Encryption"), signed outside when a
    signing key is given. `kid` defaults to the signing key's thumbprint, None omits it.
    """
    if not isinstance(manifest_digest, SuitDigest):
        raise SuitError("manifest_digest must be a SuitDigest (the envelope's digest)")
    if not isinstance(manifest_uri, str):
        raise SuitError("manifest_uri must be text")
    if nonce is not None and not isinstance(nonce, bytes):
        raise SuitError("nonce must be bytes")
    report: dict[int, Any] = {
        c.REPORT_REFERENCE: [manifest_uri, [manifest_digest.algorithm, manifest_digest.value]]
    }
    if nonce is not None:
        report[c.REPORT_NONCE] = nonce
    encoded_records = []
    for record in records:
        if isinstance(record, SuitRecord):
            encoded_records.append(_record_to_cbor(record))
        elif isinstance(record, SystemProperties):
            claims = {c.SYSTEM_COMPONENT_ID: [bytes(part) for part in record.component_id]}
            claims.update(parameters_to_cbor(record.properties))
            encoded_records.append(claims)
        else:
            raise SuitError("records must be SuitRecord or SystemProperties")
    report[c.REPORT_RECORDS] = encoded_records
    if failure is None:
        report[c.REPORT_RESULT] = True
    else:
        if not isinstance(failure, ReportFailure) or not is_int(failure.code):
            raise SuitError("failure must be a ReportFailure with an integer code")
        reason = (
            c.REPORT_REASON_BY_NAME.get(failure.reason, failure.reason)
            if isinstance(failure.reason, str)
            else failure.reason
        )
        if not is_uint(reason):
            raise SuitError(f"unknown SUIT report reason {failure.reason!r}")
        report[c.REPORT_RESULT] = {
            c.REPORT_RESULT_CODE: failure.code,
            c.REPORT_RESULT_RECORD: _record_to_cbor(failure.record),
            c.REPORT_RESULT_REASON: reason,
        }
    if capability_report is not None:
        report[c.REPORT_CAPABILITY_REPORT] = _capability_to_cbor(capability_report)
    payload = encode(report)
    if encrypt_to is not None:
        payload = encryption.encrypt_cose_encrypt(payload, encrypt_to, context_other=context_other)
    if signing_key is None:
        return payload
    try:
        return cose.sign1(payload, signing_key, alg, kid=kid, tagged=tagged)
    except CoseError as exc:
        raise SuitError(f"cannot sign the SUIT report: {exc}") from None


def make_failure(
    *,
    reason: str | int,
    section: str | int,
    offset: int = 0,
    component_index: int = 0,
    code: int = 1,
    manifest_id: Sequence[int] = (),
    properties: Mapping[str | int, Any] | None = None,
) -> ReportFailure:
    """A ReportFailure from names: make_failure(reason="condition-failed", section="install")."""
    if isinstance(reason, str):
        if reason not in c.REPORT_REASON_BY_NAME:
            raise SuitError(f"unknown SUIT report reason {reason!r}")
        reason = c.REPORT_REASON_BY_NAME[reason]
    if isinstance(section, str):
        if section not in c.COMMAND_SEQUENCE_BY_NAME:
            raise SuitError(f"unknown command sequence {section!r}")
        section = c.COMMAND_SEQUENCE_BY_NAME[section]
    record = SuitRecord(
        tuple(manifest_id), section, offset, component_index, dict(properties or {})
    )
    return ReportFailure(code, reason, record)


def _record_to_cbor(record: SuitRecord) -> list:
    if not isinstance(record, SuitRecord):
        raise SuitError("a SUIT_Record must be a SuitRecord")
    if not all(is_uint(step) for step in record.manifest_id) or not is_int(record.section):
        raise SuitError("SuitRecord manifest_id / section are not integers")
    if not is_uint(record.offset) or not is_uint(record.component_index):
        raise SuitError("SuitRecord offset / component_index are not unsigned integers")
    return [
        list(record.manifest_id),
        record.section,
        record.offset,
        record.component_index,
        parameters_to_cbor(record.properties),
        *record.extensions,
    ]


def parameters_to_cbor(parameters: Mapping[str | int, Any]) -> dict[int, Any]:
    """Readable parameter names (or numbers) -> SUIT_Parameters map; SuitDigest -> bstr .cbor."""
    encoded: dict[int, Any] = {}
    for name, value in parameters.items():
        if isinstance(name, str):
            if name not in c.PARAMETER_BY_NAME:
                raise SuitError(f"unknown SUIT parameter {name!r}")
            key = c.PARAMETER_BY_NAME[name]
        elif is_int(name):
            key = name
        else:
            raise SuitError(f"SUIT parameter key {name!r} is neither a name nor an integer")
        if isinstance(value, SuitDigest):
            value = value.to_cbor()
        encoded[key] = value
    return encoded


def _capability_to_cbor(capability: Mapping[str | int, Sequence[Any]]) -> dict:
    encoded: dict[Any, Any] = {}
    for name, value in capability.items():
        key = c.CAPABILITY_BY_NAME.get(name, name) if isinstance(name, str) else name
        if isinstance(key, str):
            raise SuitError(f"unknown capability {name!r}")
        if isinstance(key, list):
            key = tuple(key)
        if key == 1:
            encoded[key] = [list(entry) for entry in value]
        else:
            encoded[key] = list(value)
    return encoded


# --- JSON view --------------------------------------------------------------------------------


def report_to_json(result: SuitReportResult | SuitReport) -> dict[str, Any]:
    """A JSON-serialisable view of a parsed report (hex for bytes, readable names)."""
    report = result.report if isinstance(result, SuitReportResult) else result
    view: dict[str, Any] = {}
    if isinstance(result, SuitReportResult):
        view.update(
            container=result.container,
            signature=result.signature,
            alg=result.alg,
            kid=None if result.kid is None else result.kid.hex(),
            verified_by=None if result.verified_by is None else result.verified_by.kid.hex(),
            encrypted=result.encrypted,
        )
    view.update(
        manifest_uri=report.manifest_uri,
        manifest_digest=digest_to_json(report.manifest_digest),
        nonce=None if report.nonce is None else report.nonce.hex(),
        success=report.success,
        records=[_record_entry_to_json(record) for record in report.records],
        failure=None
        if report.failure is None
        else {
            "code": report.failure.code,
            "reason": report.failure.reason,
            "reason_name": report.failure.reason_name,
            "record": _record_to_json(report.failure.record),
        },
        capability_report=None
        if report.capability_report is None
        else {name: value_to_json(value) for name, value in report.capability_report.items()},
        extensions={str(key): value_to_json(value) for key, value in report.extensions.items()},
    )
    return view


def _record_entry_to_json(record: SuitRecord | SystemProperties) -> dict[str, Any]:
    if isinstance(record, SystemProperties):
        return {
            "system_component_id": component_id_to_json(record.component_id),
            "properties": value_to_json(record.properties),
        }
    return _record_to_json(record)


def _record_to_json(record: SuitRecord) -> dict[str, Any]:
    return {
        "manifest_id": list(record.manifest_id),
        "section": record.section,
        "section_name": record.section_name,
        "offset": record.offset,
        "component_index": record.component_index,
        "properties": value_to_json(record.properties),
    }
