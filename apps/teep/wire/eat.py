"""Entity Attestation Tokens (RFC 9711) and EAT Attestation Results (EAR) for the TAM.

- Claims and labels: RFC 9711 10.2 / IANA CWT registry; `cnf` from RFC 8747 3.1.
- Evidence vs Attestation Result: TEEP 7.1.1 (`attestation_payload_kind`).
- Attestation Results: TEEP 7.1.1.1 (signed by a trusted Verifier, `cnf` = RFC 9679 hash of
  the key that signed the TEEP message) and draft-ietf-rats-ear (EAR, JWT or CWT). Veraison
  (specs/veraison/NOTES.md) still writes the dotted claim names ("ear.status"); the EAR editor
  copy (#03) uses underscores ("ear_status") and CBOR labels 1000..1004: all are read.

No Django here. Every refusal is an AttestationError (a WireError) with a readable message.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import EllipsisType
from typing import Any, Literal

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from apps.teep.wire import cose
from apps.teep.wire.errors import CoseError, WireError
from apps.teep.wire.keys import TeepKey

# --- claim labels (RFC 9711 10.2, RFC 8392 4, RFC 8747 3.1) ---------------------------------

EXP = 4
NBF = 5
IAT = 6
CNF = 8
EAT_NONCE = 10
UEID = 256
SUEIDS = 257
OEMID = 258
HWMODEL = 259
HWVERSION = 260
UPTIME = 261
OEMBOOT = 262
DBGSTAT = 263
EAT_PROFILE = 265
SUBMODS = 266
SWNAME = 270
SWVERSION = 271
MANIFESTS = 272
MEASUREMENTS = 273

# cnf members (RFC 8747 3.1)
CNF_COSE_KEY = 1
CNF_ENCRYPTED_COSE_KEY = 2
CNF_KID = 3

CLAIM_NAMES: dict[int, str] = {
    EXP: "exp",
    NBF: "nbf",
    IAT: "iat",
    CNF: "cnf",
    EAT_NONCE: "eat_nonce",
    UEID: "ueid",
    SUEIDS: "sueids",
    OEMID: "oemid",
    HWMODEL: "hwmodel",
    HWVERSION: "hwversion",
    UPTIME: "uptime",
    OEMBOOT: "oemboot",
    DBGSTAT: "dbgstat",
    EAT_PROFILE: "eat_profile",
    SUBMODS: "submods",
    SWNAME: "swname",
    SWVERSION: "swversion",
    MANIFESTS: "manifests",
    MEASUREMENTS: "measurements",
}

# TEEP 5: claims an EAT of the TEEP profile must carry.
TEEP_REQUIRED_CLAIMS: tuple[int, ...] = (UEID, OEMID, HWMODEL, HWVERSION, MANIFESTS, CNF)

# TEEP 5: the profile; "XXXX" becomes the TEEP RFC number on publication.
TEEP_EAT_PROFILE = "urn:ietf:rfc:rfcXXXX"
EAT_CWT_MEDIA_TYPE = "application/eat+cwt"
# TEEP 4.3 / 7.1.1: what an absent attestation-payload-format means.
TEEP_ATTESTATION_RESULT_MEDIA_TYPE = f'{EAT_CWT_MEDIA_TYPE}; eat_profile="{TEEP_EAT_PROFILE}"'

# RFC 9711 4.1: eat_nonce is 8..64 bytes.
NONCE_MIN, NONCE_MAX = 8, 64

# measured-component (draft-ietf-rats-eat-measured-component): content type 600 in the
# teep-wasm-demo vectors ("TBD1"); {1: [name, version], 2: [alg, digest]}.
MEASURED_COMPONENT_CONTENT_TYPE = 600

_MAX_DEPTH = 16
_MAX_EAT_BYTES = 64 * 1024


class AttestationError(WireError):
    """An EAT or Attestation Result is malformed, not signed by the expected key, stale or
    unbound."""


# --- building and parsing EATs ---------------------------------------------------------------


def build_eat(
    claims: Mapping[int, Any],
    signing_key: TeepKey,
    alg: int | None = None,
    kid: bytes | None | EllipsisType = ...,
) -> bytes:
    """A CWT-style EAT: tagged COSE_Sign1 (18) over the CBOR claims map (RFC 9711 7.1).

    TEEP 5: definite lengths, preferred serialisation, no tags in the claims (cbor2 writes
    shortest forms; canonical ordering makes the bytes reproducible). `kid` defaults to the
    signing key's RFC 9679 thumbprint.
    """
    if not isinstance(claims, Mapping):
        raise AttestationError("EAT claims must be a map")
    try:
        payload = cbor2.dumps(dict(claims), canonical=True)
        return cose.sign1(payload, signing_key, alg, kid=kid)
    except CoseError as exc:
        raise AttestationError(f"cannot sign the EAT: {exc}") from None
    except (TypeError, ValueError, cbor2.CBOREncodeError) as exc:
        raise AttestationError(f"cannot encode the EAT claims: {exc}") from None


def parse_eat(data: bytes) -> tuple[dict, cose.CoseMessage]:
    """The (unverified) claims of a signed EAT and its COSE information.

    A CWT tag (61) around the COSE_Sign1 is accepted (RFC 8392 6). The caller still has to
    verify the signature (`verify_eat`) before trusting any claim.
    """
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise AttestationError(f"EAT must be bytes, not {type(data).__name__}")
    if len(data) > _MAX_EAT_BYTES:
        raise AttestationError(f"EAT is too large ({len(data)} bytes)")
    data = _strip_cwt_tag(data)
    try:
        message = cose.parse(data)
    except CoseError as exc:
        raise AttestationError(f"EAT is not a COSE_Sign1: {exc}") from None
    if message.structure != "COSE_Sign1":
        raise AttestationError("EAT must be a COSE_Sign1, not a COSE_Sign")
    if message.payload is None:
        raise AttestationError("EAT payload is detached; a detached EAT bundle is not supported")
    claims = _loads(message.payload, "EAT claims")
    if not isinstance(claims, dict):
        raise AttestationError(f"EAT claims must be a CBOR map, not {type(claims).__name__}")
    for label in claims:
        if not (type(label) is int or isinstance(label, str)):
            raise AttestationError(f"EAT claim label {label!r} is neither an integer nor text")
    return claims, message


def verify_eat(
    data: bytes, key: TeepKey, *, allowed_algs: Sequence[int] = cose.DEFAULT_ALLOWED_ALGS
) -> dict:
    """The claims of an EAT whose COSE_Sign1 signature verifies with `key`."""
    claims, message = parse_eat(data)
    try:
        cose.verify(message, key, allowed_algs=allowed_algs)
    except CoseError as exc:
        raise AttestationError(f"EAT signature: {exc}") from None
    return claims


def eat_kid(message: cose.CoseMessage) -> bytes | None:
    kid = message.signatures[0].kid if message.signatures else None
    return kid or None


def cnf_key_or_kid(claims: Mapping[Any, Any]) -> TeepKey | bytes:
    """The confirmation key of `cnf` (RFC 8747 3.1): a public TeepKey (COSE_Key) or a kid.

    The COSE_Key's own kid member is ignored: TEEP identifies keys by their RFC 9679
    thumbprint, computed from the key material.
    """
    cnf = claims.get(CNF)
    if cnf is None:
        raise AttestationError("no cnf claim (8): nothing binds the TEEP Agent key")
    if not isinstance(cnf, Mapping):
        raise AttestationError("cnf (8) must be a map")
    if CNF_COSE_KEY in cnf:
        cose_key = cnf[CNF_COSE_KEY]
        if isinstance(cose_key, bytes):  # some attesters wrap the COSE_Key in a bstr
            cose_key = _loads(cose_key, "cnf COSE_Key")
        try:
            return TeepKey.from_cose_key(cose_key).public()
        except (CoseError, ValueError) as exc:
            raise AttestationError(f"cnf COSE_Key is not a usable key: {exc}") from None
    if CNF_KID in cnf:
        kid = cnf[CNF_KID]
        if not isinstance(kid, bytes) or not kid:
            raise AttestationError("cnf kid (3) must be a non-empty byte string")
        return kid
    if CNF_ENCRYPTED_COSE_KEY in cnf:
        raise AttestationError("cnf holds an Encrypted_COSE_Key (2), which is not supported")
    raise AttestationError("cnf has neither a COSE_Key (1) nor a kid (3)")


def cnf_matches(claims: Mapping[Any, Any], agent_key: TeepKey) -> bool:
    """TEEP 7.1.1.1: cnf names the key that verified the TEEP message (RFC 9679 SHA-256)."""
    bound = cnf_key_or_kid(claims)
    bound_kid = bound.kid if isinstance(bound, TeepKey) else bound
    return bound_kid == agent_key.kid


def eat_nonce(claims: Mapping[Any, Any]) -> bytes | None:
    """TEEP 5: when eat_nonce is used it is a single bstr (an array is refused)."""
    value = claims.get(EAT_NONCE)
    if value is None:
        return None
    if isinstance(value, list):
        raise AttestationError("eat_nonce must be a single byte string in the TEEP profile")
    if not isinstance(value, bytes):
        raise AttestationError("eat_nonce must be a byte string")
    if not NONCE_MIN <= len(value) <= NONCE_MAX:
        raise AttestationError(f"eat_nonce must be 8..64 bytes, not {len(value)}")
    return value


def measured_components(claims: Mapping[Any, Any]) -> list[dict]:
    """Readable measured-component entries of `measurements` (273): name, version, alg, digest.

    Entries of other content types are returned with only their content type.
    """
    entries = claims.get(MEASUREMENTS)
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise AttestationError("measurements (273) must be an array")
    result = []
    for index, entry in enumerate(entries):
        if not (isinstance(entry, list) and len(entry) == 2 and type(entry[0]) is int):
            raise AttestationError(f"measurements[{index}] must be [content-type, content]")
        content_type, content = entry
        if content_type != MEASURED_COMPONENT_CONTENT_TYPE:
            result.append({"content_type": content_type})
            continue
        component = (
            _loads(content, f"measurements[{index}]") if isinstance(content, bytes) else content
        )
        try:
            ident, measurement = component[1], component[2]
            name = ident[0]
            version = ident[1][0] if len(ident) > 1 and isinstance(ident[1], list) else None
            alg, digest = measurement[0], measurement[1]
        except (KeyError, IndexError, TypeError):
            raise AttestationError(f"measurements[{index}] is not a measured-component") from None
        if not isinstance(name, str) or not isinstance(digest, bytes):
            raise AttestationError(f"measurements[{index}] has no name or digest")
        result.append(
            {
                "content_type": content_type,
                "name": name,
                "version": version,
                "alg": alg,
                "digest": digest.hex(),
            }
        )
    return result


def readable_claims(claims: Mapping[Any, Any]) -> dict[str, Any]:
    """The identity claims as JSON-friendly values (hex for byte strings), for records and UI."""
    out: dict[str, Any] = {}
    for label, name in (
        (UEID, "ueid"),
        (OEMID, "oemid"),
        (HWMODEL, "hwmodel"),
        (EAT_PROFILE, "eat_profile"),
        (IAT, "iat"),
    ):
        if label in claims:
            out[name] = _jsonable(claims[label])
    hwversion = claims.get(HWVERSION)
    if isinstance(hwversion, list) and hwversion:
        out["hwversion"] = _jsonable(hwversion[0])
    return out


def hwversion_text(claims: Mapping[Any, Any]) -> str | None:
    """RFC 9711 4.2.5: hwversion = [version tstr, scheme]; older agents send a bstr version."""
    value = claims.get(HWVERSION)
    if not isinstance(value, list) or not value:
        return None
    version = value[0]
    if isinstance(version, bytes):
        try:
            return version.decode("utf-8")
        except UnicodeDecodeError:
            return version.hex()
    return version if isinstance(version, str) else None


def oemid_text(value: Any) -> str:
    """oemid as compared with reference values: hex for a bstr (IEEE OUI or random OEM ID),
    "pen:<decimal>" for an IANA Private Enterprise Number (RFC 9711 4.2.3)."""
    if isinstance(value, bytes):
        return value.hex()
    return f"pen:{value}"


# --- TEEP 7.1.1: Evidence or Attestation Result? ---------------------------------------------

PayloadKind = Literal["attestation-result", "evidence"]


def attestation_payload_kind(
    attestation_payload_format: str | None, *, teep_profiles: Iterable[str] = (TEEP_EAT_PROFILE,)
) -> PayloadKind:
    """TEEP 7.1.1: absent, or `application/eat+cwt; eat_profile=<TEEP profile>`, is an
    Attestation Result; any other value (or one that does not parse) is Evidence.

    Type and subtype compare case-insensitively, parameter names too; the profile value may be
    quoted or not (the draft itself writes it unquoted, although ':' is not a token character).
    """
    if attestation_payload_format is None:
        return "attestation-result"
    try:
        mtype, params = parse_media_type(attestation_payload_format)
    except AttestationError:
        return "evidence"
    profiles = {p.lower() for p in teep_profiles}
    if mtype == EAT_CWT_MEDIA_TYPE and params.get("eat_profile", "").lower() in profiles:
        return "attestation-result"
    return "evidence"


_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_TSPECIALS = frozenset('()<>@,;:\\"/[]?= ')


def parse_media_type(value: str) -> tuple[str, dict[str, str]]:
    """`type/subtype; name=value; ...` -> ("type/subtype" lower-cased, {name lower: value}).

    Values may be tokens, quoted strings (RFC 9110 5.6.4, with backslash escapes), or, leniently,
    any run of visible characters without ';' or '"' (for `eat_profile=urn:ietf:...`).
    """
    if not isinstance(value, str):
        raise AttestationError("media type must be text")
    text = value.strip()
    head, _, rest = text.partition(";")
    mtype = head.strip().lower()
    main, slash, sub = mtype.partition("/")
    if (
        not slash
        or not main
        or not sub
        or not set(main) <= _TOKEN_CHARS
        or not set(sub) <= _TOKEN_CHARS
    ):
        raise AttestationError(f"not a media type: {value!r}")
    params: dict[str, str] = {}
    pos, n = 0, len(rest)
    while pos < n:
        while pos < n and rest[pos] in " \t;":
            pos += 1
        if pos >= n:
            break
        eq = rest.find("=", pos)
        if eq < 0:
            raise AttestationError(f"media type parameter without '=' in {value!r}")
        name = rest[pos:eq].strip().lower()
        if not name or not set(name) <= _TOKEN_CHARS:
            raise AttestationError(f"bad media type parameter name {name!r}")
        pos = eq + 1
        while pos < n and rest[pos] in " \t":
            pos += 1
        if pos < n and rest[pos] == '"':
            pos += 1
            chars = []
            while True:
                if pos >= n:
                    raise AttestationError(f"unterminated quoted string in {value!r}")
                ch = rest[pos]
                if ch == "\\" and pos + 1 < n:
                    chars.append(rest[pos + 1])
                    pos += 2
                    continue
                if ch == '"':
                    pos += 1
                    break
                chars.append(ch)
                pos += 1
            param_value = "".join(chars)
            while pos < n and rest[pos] in " \t":
                pos += 1
            if pos < n and rest[pos] != ";":
                raise AttestationError(f"text after a quoted parameter value in {value!r}")
        else:
            end = rest.find(";", pos)
            end = n if end < 0 else end
            param_value = rest[pos:end].strip()
            if not param_value or '"' in param_value or any(c.isspace() for c in param_value):
                raise AttestationError(f"bad value for media type parameter {name!r}")
            pos = end
        if name in params:
            raise AttestationError(f"media type parameter {name!r} repeated")
        params[name] = param_value
    return mtype, params


def format_media_type(mtype: str, params: Mapping[str, str]) -> str:
    """As Go's mime.FormatMediaType writes it (what Veraison compares): names lower-cased and
    sorted, values quoted iff they hold a tspecial or a space."""
    parts = [mtype.lower()]
    for name in sorted(k.lower() for k in params):
        v = {k.lower(): val for k, val in params.items()}[name]
        if v and not (set(v) & _TSPECIALS) and all(c.isprintable() for c in v):
            parts.append(f"{name}={v}")
        else:
            escaped = v.replace("\\", "\\\\").replace('"', '\\"')
            parts.append(f'{name}="{escaped}"')
    return "; ".join(parts)


def normalize_media_type(value: str) -> str:
    """Parse leniently, write strictly: `eat_profile=urn:x` becomes `eat_profile="urn:x"`."""
    return format_media_type(*parse_media_type(value))


# --- EAR: EAT Attestation Results ------------------------------------------------------------

EAR_PROFILE_VERAISON = "tag:github.com,2023:veraison/ear"
EAR_PROFILE_03 = "tag:ietf.org,2026:rats/ear#03"
EAR_PROFILES = (EAR_PROFILE_VERAISON, EAR_PROFILE_03)

# AR4SI trustworthiness tiers (draft-ietf-rats-ar4si 3.2; EAR ar4si.cddl).
TIER_NONE, TIER_AFFIRMING, TIER_WARNING, TIER_CONTRAINDICATED = 0, 2, 32, 96
STATUS_BY_TIER = {
    TIER_NONE: "none",
    TIER_AFFIRMING: "affirming",
    TIER_WARNING: "warning",
    TIER_CONTRAINDICATED: "contraindicated",
}
TIER_BY_STATUS = {name: tier for tier, name in STATUS_BY_TIER.items()}
STATUS_ORDER = ("affirming", "none", "warning", "contraindicated")  # better to worse

# AR4SI trustworthiness vector claims: JSON name <-> CBOR label.
TRUST_VECTOR_CLAIMS = (
    "instance-identity",
    "configuration",
    "executables",
    "file-system",
    "hardware",
    "runtime-opaque",
    "storage-opaque",
    "sourced-data",
)
TRUST_VECTOR_LABELS = dict(enumerate(TRUST_VECTOR_CLAIMS))

# EAR claim names: (#03 underscore, Veraison dotted, CBOR label).
_EAR_STATUS = ("ear_status", "ear.status", 1000)
_EAR_VECTOR = ("ear_trustworthiness_vector", "ear.trustworthiness-vector", 1001)
_EAR_RAW_EVIDENCE = ("ear_raw_evidence", "ear.raw-evidence", 1002)
_EAR_POLICY_IDS = ("ear_appraisal_policy_ids", None, 1003)
_EAR_POLICY_ID = (None, "ear.appraisal-policy-id", None)
_EAR_VERIFIER_ID = ("ear_verifier_id", "ear.verifier-id", 1004)
_EAR_TEEP_CLAIMS = ("ear_teep_claims", None, 65000)
_EAR_KEY_ATTESTATION = ("ear_veraison_key_attestation", "ear.veraison.key-attestation", None)
_EAR_POLICY_CLAIMS = ("ear_veraison_policy_claims", "ear.veraison.policy-claims", None)
_TEEP_CLAIM_NAMES = {
    EAT_NONCE: "eat_nonce",
    UEID: "ueid",
    OEMID: "oemid",
    HWMODEL: "hwmodel",
    HWVERSION: "hwversion",
    MANIFESTS: "manifests",
}


def tier_status(tier: int) -> str:
    """A trustworthiness claim value (-128..127) -> its tier name (AR4SI 3.2)."""
    if 2 <= tier <= 31:
        return "affirming"
    if 32 <= tier <= 95:
        return "warning"
    if tier >= 96 or tier <= -2:
        return "contraindicated"
    return "none"


def worst_status(statuses: Iterable[str]) -> str:
    statuses = list(statuses)
    if not statuses:
        return "none"
    return max(statuses, key=STATUS_ORDER.index)


def status_from_vector(vector: Mapping[str, int]) -> str:
    """EAR: ear_status is no better than the worst claim; "none" claims do not lower it."""
    tiers = [tier_status(v) for v in vector.values() if tier_status(v) != "none"]
    return worst_status(tiers) if tiers else "none"


@dataclass(frozen=True)
class EarAppraisal:
    """One submod of an EAR (EAR 3.2): the appraisal of one attester."""

    name: str
    status: str
    trust_vector: dict[str, int]
    policy_ids: tuple[str, ...] = ()
    nonce: bytes | None = None
    teep_claims: dict[str, Any] = field(default_factory=dict)
    key_attestation: dict[str, Any] | None = None
    policy_claims: dict[str, Any] | None = None


@dataclass(frozen=True)
class AttestationResult:
    """An Attestation Result as the TAM uses it, whatever its serialisation."""

    status: str  # affirming / warning / contraindicated / none
    profile: str | None
    iat: int | None
    exp: int | None = None
    nonce: bytes | None = None
    verifier_id: dict[str, Any] = field(default_factory=dict)
    submods: dict[str, EarAppraisal] = field(default_factory=dict)
    cnf: TeepKey | bytes | None = None
    teep_claims: dict[str, Any] = field(default_factory=dict)
    claims: dict[Any, Any] = field(default_factory=dict, repr=False)

    @property
    def affirming(self) -> bool:
        return self.status == "affirming"

    @property
    def trust_vector(self) -> dict[str, int]:
        """The worst value per AR4SI claim across submods (one submod: its own vector)."""
        merged: dict[str, int] = {}
        for appraisal in self.submods.values():
            for name, value in appraisal.trust_vector.items():
                current = merged.get(name)
                if current is None or STATUS_ORDER.index(tier_status(value)) > STATUS_ORDER.index(
                    tier_status(current)
                ):
                    merged[name] = value
        return merged

    @property
    def policy_ids(self) -> tuple[str, ...]:
        return tuple(p for a in self.submods.values() for p in a.policy_ids)

    @property
    def nonces(self) -> list[bytes]:
        """The top-level nonce and every submod's eat_nonce / TEEP-claims nonce."""
        found = [self.nonce] if self.nonce is not None else []
        for appraisal in self.submods.values():
            if appraisal.nonce is not None:
                found.append(appraisal.nonce)
            teep_nonce = appraisal.teep_claims.get("eat_nonce")
            if isinstance(teep_nonce, bytes):
                found.append(teep_nonce)
        return found


def _pick(claims: Mapping[Any, Any], names: tuple) -> Any:
    for name in names:
        if name is not None and name in claims:
            return claims[name]
    return None


def ear_from_claims(claims: Mapping[Any, Any]) -> AttestationResult:
    """An EAR claims-set, JSON (either spelling) or CBOR (integer labels), as a typed result."""
    if not isinstance(claims, Mapping):
        raise AttestationError("EAR claims-set must be a map")
    profile = _pick(claims, ("eat_profile", EAT_PROFILE))
    if profile is not None and not isinstance(profile, str):
        raise AttestationError("EAR eat_profile must be text")
    iat = _time_claim(claims, ("iat", IAT), "iat")
    exp = _time_claim(claims, ("exp", EXP), "exp")
    nonce = _nonce_value(_pick(claims, ("eat_nonce", EAT_NONCE)), "eat_nonce")
    verifier_id = _pick(claims, _EAR_VERIFIER_ID) or {}
    if not isinstance(verifier_id, Mapping):
        raise AttestationError("EAR verifier-id must be a map")
    verifier_id = {
        ("developer" if k == 0 else "build" if k == 1 else str(k)): v
        for k, v in verifier_id.items()
    }
    submods_raw = _pick(claims, ("submods", SUBMODS))
    if not isinstance(submods_raw, Mapping) or not submods_raw:
        raise AttestationError("EAR submods must be a non-empty map")
    submods = {}
    for name, appraisal in submods_raw.items():
        if not isinstance(name, str) or not isinstance(appraisal, Mapping):
            raise AttestationError("each EAR submod must be text => map")
        submods[name] = _ear_appraisal(name, appraisal)
    top_status = _pick(claims, _EAR_STATUS)
    statuses = [a.status for a in submods.values()]
    if top_status is not None:
        statuses.append(_status_value(top_status))
    status = worst_status(statuses)
    cnf = cnf_key_or_kid(claims) if CNF in claims else None
    teep_claims = next((a.teep_claims for a in submods.values() if a.teep_claims), {})
    return AttestationResult(
        status=status,
        profile=profile,
        iat=iat,
        exp=exp,
        nonce=nonce,
        verifier_id=dict(verifier_id),
        submods=submods,
        cnf=cnf,
        teep_claims=teep_claims,
        claims=dict(claims),
    )


def _ear_appraisal(name: str, appraisal: Mapping[Any, Any]) -> EarAppraisal:
    raw_status = _pick(appraisal, _EAR_STATUS)
    if raw_status is None:
        raise AttestationError(f"EAR submod {name!r} has no ear_status")
    status = _status_value(raw_status)
    vector_raw = _pick(appraisal, _EAR_VECTOR) or {}
    if not isinstance(vector_raw, Mapping):
        raise AttestationError(f"EAR submod {name!r}: trustworthiness vector must be a map")
    vector = {}
    for key, value in vector_raw.items():
        claim = TRUST_VECTOR_LABELS.get(key, key) if type(key) is int else key
        if type(value) is not int or not -128 <= value <= 127:
            raise AttestationError(f"EAR submod {name!r}: {claim} must be an integer -128..127")
        vector[str(claim)] = value
    ids = _pick(appraisal, _EAR_POLICY_IDS)
    single = _pick(appraisal, _EAR_POLICY_ID)
    policy_ids: tuple[str, ...] = ()
    if isinstance(ids, list):
        policy_ids = tuple(str(i) for i in ids)
    elif isinstance(single, str):
        policy_ids = (single,)
    nonce = _nonce_value(_pick(appraisal, ("eat_nonce", EAT_NONCE)), f"{name} eat_nonce")
    teep_raw = _pick(appraisal, _EAR_TEEP_CLAIMS)
    teep_claims: dict[str, Any] = {}
    if teep_raw is not None:
        if not isinstance(teep_raw, Mapping):
            raise AttestationError(f"EAR submod {name!r}: ear_teep_claims must be a map")
        for key, value in teep_raw.items():
            claim = _TEEP_CLAIM_NAMES.get(key, key) if type(key) is int else key
            if claim in ("eat_nonce", "ueid", "oemid", "hwmodel") and isinstance(value, str):
                value = b64decode_tolerant(value, f"ear_teep_claims {claim}")
            teep_claims[str(claim)] = value
    key_attestation = _pick(appraisal, _EAR_KEY_ATTESTATION)
    policy_claims = _pick(appraisal, _EAR_POLICY_CLAIMS)
    return EarAppraisal(
        name=name,
        status=status,
        trust_vector=vector,
        policy_ids=policy_ids,
        nonce=nonce,
        teep_claims=teep_claims,
        key_attestation=dict(key_attestation) if isinstance(key_attestation, Mapping) else None,
        policy_claims=dict(policy_claims) if isinstance(policy_claims, Mapping) else None,
    )


def _status_value(value: Any) -> str:
    if isinstance(value, str) and value in TIER_BY_STATUS:
        return value
    if type(value) is int and value in STATUS_BY_TIER:
        return STATUS_BY_TIER[value]
    raise AttestationError(f"unknown ear_status {value!r}")


def _time_claim(claims: Mapping[Any, Any], names: tuple, what: str) -> int | None:
    value = _pick(claims, names)
    if value is None:
        return None
    if type(value) is not int:  # EAR 3.1: floating point times are an error
        raise AttestationError(f"{what} must be an integer number of seconds")
    return value


def _nonce_value(value: Any, what: str) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):  # JSON: base64 (url or std alphabet, padded or not)
        return b64decode_tolerant(value, what)
    if isinstance(value, bytes):
        return value
    if isinstance(value, list) and value and all(isinstance(v, (bytes, str)) for v in value):
        return _nonce_value(value[0], what)
    raise AttestationError(f"{what} must be a byte string or base64 text")


def b64decode_tolerant(text: str, what: str = "value") -> bytes:
    """base64 in either alphabet, with or without padding (Veraison NOTES.md, CLIENT 1.8)."""
    if not isinstance(text, str):
        raise AttestationError(f"{what} must be base64 text")
    cleaned = text.strip().rstrip("=").replace("+", "-").replace("/", "_")
    if (
        not cleaned
        or not set(cleaned)
        <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        or len(cleaned) % 4 == 1
    ):
        raise AttestationError(f"{what} is not base64")
    try:
        return base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
    except (binascii.Error, ValueError):
        raise AttestationError(f"{what} is not base64") from None


def b64url(data: bytes, *, pad: bool = False) -> str:
    text = base64.urlsafe_b64encode(data).decode("ascii")
    return text if pad else text.rstrip("=")


# --- EAR as JWT (what Veraison returns) -------------------------------------------------------

JWT_ALGORITHMS = ("ES256", "EdDSA")


def decode_jwt_unverified(token: str | bytes) -> tuple[dict, dict, bytes, bytes]:
    """(header, claims, signing input, signature) of a compact JWS; nothing is verified."""
    if isinstance(token, bytes):
        try:
            token = token.decode("ascii")
        except UnicodeDecodeError:
            raise AttestationError("EAR JWT is not ASCII") from None
    if not isinstance(token, str):
        raise AttestationError("EAR JWT must be text")
    token = token.strip().strip('"')  # some tools store the JWT as a JSON string
    parts = token.split(".")
    if len(parts) != 3:
        raise AttestationError("EAR JWT must have three dot-separated parts")
    try:
        header = json.loads(b64decode_tolerant(parts[0], "JWT header"))
        claims = json.loads(b64decode_tolerant(parts[1], "JWT payload"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise AttestationError(f"EAR JWT is not JSON: {exc}") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise AttestationError("EAR JWT header and payload must be JSON objects")
    signature = b64decode_tolerant(parts[2], "JWT signature") if parts[2] else b""
    return header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature


def verify_jwt(token: str | bytes, key: TeepKey, *, algorithms: Sequence[str] = ("ES256",)) -> dict:
    """The claims of a compact JWS signed with `key` (ES256 over P-256, or EdDSA)."""
    header, claims, signing_input, signature = decode_jwt_unverified(token)
    alg = header.get("alg")
    if alg not in algorithms or alg not in JWT_ALGORITHMS:
        raise AttestationError(f"EAR JWT algorithm {alg!r} is not allowed")
    if "crit" in header:
        raise AttestationError("EAR JWT has critical header parameters we do not understand")
    public = key.public_key
    try:
        if alg == "ES256":
            if not isinstance(public, ec.EllipticCurvePublicKey) or len(signature) != 64:
                raise AttestationError("EAR JWT: ES256 needs a P-256 key and a 64-byte signature")
            der = utils.encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            public.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
        else:
            if not isinstance(public, Ed25519PublicKey):
                raise AttestationError("EAR JWT: EdDSA needs an Ed25519 key")
            public.verify(signature, signing_input)
    except InvalidSignature:
        raise AttestationError(
            "EAR JWT signature does not verify with the pinned Verifier key"
        ) from None
    return claims


def sign_jwt(claims: Mapping[str, Any], key: TeepKey) -> str:
    """ES256 / EdDSA compact JWS; used by tests and the Veraison stand-in."""
    alg = "ES256" if key.kind == "p256" else "EdDSA"
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64url(json.dumps(dict(claims), separators=(",", ":")).encode())
    signing_input = f"{header}.{body}".encode()
    if key.kind == "p256":
        der = key.private_key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
        r, s = utils.decode_dss_signature(der)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        signature = key.private_key.sign(signing_input)
    return f"{header}.{body}.{b64url(signature)}"


def key_from_jwk(jwk: Mapping[str, Any]) -> TeepKey:
    """A public TeepKey from a JWK: EC P-256 or OKP Ed25519 (Veraison's ear-verification-key)."""
    if not isinstance(jwk, Mapping):
        raise AttestationError("JWK must be a JSON object")
    kty, crv = jwk.get("kty"), jwk.get("crv")
    try:
        if kty == "EC" and crv == "P-256":
            x = b64decode_tolerant(jwk["x"], "JWK x")
            y = b64decode_tolerant(jwk["y"], "JWK y")
            return TeepKey(
                ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + x + y)
            )
        if kty == "OKP" and crv == "Ed25519":
            return TeepKey(
                Ed25519PublicKey.from_public_bytes(b64decode_tolerant(jwk["x"], "JWK x"))
            )
    except (KeyError, ValueError) as exc:
        raise AttestationError(f"JWK is not a usable key: {exc}") from None
    raise AttestationError(
        f"unsupported JWK kty {kty!r} / crv {crv!r}: expected EC P-256 or OKP Ed25519"
    )


def parse_ear_jwt(
    token: str | bytes,
    key: TeepKey | None,
    *,
    algorithms: Sequence[str] = ("ES256",),
    profiles: Sequence[str] | None = EAR_PROFILES,
) -> AttestationResult:
    """An EAR JWT as a typed result. With `key` None the signature is NOT checked (inspection)."""
    if key is None:
        claims = decode_jwt_unverified(token)[1]
    else:
        claims = verify_jwt(token, key, algorithms=algorithms)
    result = ear_from_claims(claims)
    if profiles is not None and result.profile not in profiles:
        raise AttestationError(f"EAR profile {result.profile!r} is not one we accept")
    return result


# --- TEEP 7.1.1.1: validating an Attestation Result (Passport model) -------------------------


def validate_attestation_result(
    payload: bytes,
    *,
    verifier_keys: Sequence[TeepKey],
    agent_key: TeepKey,
    now: float | None = None,
    max_age_seconds: int = 300,
    clock_skew_seconds: int = 60,
    expected_nonce: bytes | None = None,
) -> AttestationResult:
    """A CBOR Attestation Result (EAR CWT or a TEEP-profile EAT) that passes TEEP 7.1.1.1:

    1. signed (COSE_Sign1) by one of `verifier_keys` (found by kid, else tried in turn);
    2. fresh: `exp` not passed, `iat` within `max_age_seconds` (and not in the future), and,
       when `expected_nonce` is given (TEEP 9: the QueryRequest token in the Passport model),
       a nonce equal to it; with neither iat nor a nonce it cannot be shown fresh;
    3. `cnf` equal to the RFC 9679 SHA-256 thumbprint of `agent_key`.

    A plain TEEP-profile EAT carries no ear_status: a trusted Verifier issuing it is the
    affirmation, so its status is "affirming". An EAR carries its own status, returned as is:
    the caller decides what a "warning" means.
    """
    now = time.time() if now is None else now
    claims, message = parse_eat(payload)
    kid = eat_kid(message)
    candidates = [k for k in verifier_keys if kid is not None and k.kid == kid] or list(
        verifier_keys
    )
    if not candidates:
        raise AttestationError("no trusted Verifier key is configured")
    for key in candidates:
        try:
            cose.verify(message, key)
            break
        except CoseError:
            continue
    else:
        raise AttestationError("Attestation Result is not signed by a Verifier we trust")

    if SUBMODS in claims and any(
        isinstance(v, Mapping) and 1000 in v for v in claims[SUBMODS].values()
    ):
        result = ear_from_claims(claims)
    else:
        nonce = eat_nonce(claims)
        result = AttestationResult(
            status="affirming",
            profile=claims.get(EAT_PROFILE),
            iat=_time_claim(claims, (IAT,), "iat"),
            exp=_time_claim(claims, (EXP,), "exp"),
            nonce=nonce,
            cnf=cnf_key_or_kid(claims) if CNF in claims else None,
            teep_claims={
                name: claims[label] for label, name in _TEEP_CLAIM_NAMES.items() if label in claims
            },
            claims=dict(claims),
        )

    if result.exp is not None and result.exp <= now:
        raise AttestationError("Attestation Result has expired (exp)")
    if result.iat is not None:
        if result.iat > now + clock_skew_seconds:
            raise AttestationError("Attestation Result iat is in the future")
        if now - result.iat > max_age_seconds:
            raise AttestationError(f"Attestation Result is older than {max_age_seconds} s (iat)")
    if expected_nonce is not None:
        if expected_nonce not in result.nonces:
            raise AttestationError("Attestation Result nonce does not match the QueryRequest token")
    elif result.iat is None:
        raise AttestationError(
            "Attestation Result carries neither iat nor a nonce: freshness unknown"
        )

    if result.cnf is None:
        raise AttestationError("Attestation Result has no cnf claim (TEEP 7.1.1.1)")
    bound_kid = result.cnf.kid if isinstance(result.cnf, TeepKey) else result.cnf
    if bound_kid != agent_key.kid:
        raise AttestationError(
            "Attestation Result cnf names another key than the one that signed the TEEP message"
        )
    return result


# --- helpers ---------------------------------------------------------------------------------


def _strip_cwt_tag(data: bytes) -> bytes:
    # Tag 61 (CWT) is 0xd8 0x3d; re-encode the inner item only when it is present.
    if data[:2] == b"\xd8\x3d":
        item = _loads(data, "CWT")
        if isinstance(item, cbor2.CBORTag) and item.tag == 61:
            return cbor2.dumps(item.value)
    return data


def _loads(data: bytes, what: str) -> Any:
    stream = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(stream, max_depth=_MAX_DEPTH).decode()
    except Exception as exc:  # cbor2 raises many types on hostile input
        raise AttestationError(f"{what} is not valid CBOR: {exc}") from None
    if stream.tell() != len(data):
        raise AttestationError(f"{what} has trailing bytes after the CBOR item")
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def is_cose_encrypt(data: bytes) -> bool:
    """A tagged COSE_Encrypt (96): TEEP 8.2 encrypted EAT, to decrypt before appraisal."""
    return isinstance(data, (bytes, bytearray)) and bytes(data[:2]) == b"\xd8\x60"
