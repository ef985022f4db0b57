"""SUIT envelopes (draft-ietf-suit-manifest-37, -trust-domains-12): build, parse, verify.

An envelope is a map of byte strings (manifest 8.2): the authentication wrapper (2), the
manifest (3), severed members under their manifest keys (8.4.12), integrated payloads and
dependencies under text keys (5.5, TD 5.2.3), and a delegation chain (1, TD). The manifest
digest is SHA-256 over the bstr-wrapped manifest as it sits in the envelope; each
authentication block is a tagged COSE structure with detached payload = the bstr-wrapped
SUIT_Digest (8.3).

The parser keeps every byte string as received, so `envelope_to_bytes(parse_envelope(x)) == x`;
it refuses input that is not in deterministic CBOR (manifest 8.1), which is what makes that
exact: duplicate keys and trailing bytes could otherwise make the TAM read a different
envelope from the one a device reads.
"""

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import EllipsisType, MappingProxyType
from typing import Any, NamedTuple

import cbor2

from apps.teep.wire import cose
from apps.teep.wire.errors import CoseError, SuitError
from apps.teep.wire.keys import TeepKey
from apps.teep.wire.suit import constants as c
from apps.teep.wire.suit._cbor import decode_deterministic, encode, is_int, is_uint

_HASHES = {c.SHA256: hashlib.sha256, -43: hashlib.sha384, -44: hashlib.sha512}
_COSE_STRUCTURES = {
    c.TAG_COSE_SIGN1: "COSE_Sign1",
    c.TAG_COSE_SIGN: "COSE_Sign",
    c.TAG_COSE_MAC0: "COSE_Mac0",
    c.TAG_COSE_MAC: "COSE_Mac",
}
_HMAC_ALGORITHMS = {c.HMAC_256_256: hashlib.sha256}
_MAX_NESTING = 8  # try-each / run-sequence nesting we decode


# --- data model -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SuitDigest:
    """SUIT_Digest (manifest 10): [algorithm-id, bytes, * extensions]."""

    algorithm: int
    value: bytes

    @property
    def algorithm_name(self) -> str:
        return c.DIGEST_ALGORITHM_NAMES.get(self.algorithm, f"algorithm({self.algorithm})")

    def to_cbor(self) -> bytes:
        return cbor2.dumps([self.algorithm, self.value])

    @classmethod
    def sha256(cls, data: bytes) -> "SuitDigest":
        return cls(c.SHA256, hashlib.sha256(data).digest())


class Command(NamedTuple):
    """One command of a sequence: its readable name and decoded argument.

    Arguments: a SUIT_Rep_Policy int for most conditions and directives; a parameter map
    (readable names -> values, image-digest as SuitDigest) for override/set-parameters; an int,
    True or tuple of ints for set-component-index; a tuple of Commands for run-sequence; a tuple
    of command tuples (None last if the draft's trailing nil is present) for try-each.
    """

    name: str
    argument: Any

    @property
    def code(self) -> int:
        return _code_from_name(self.name, c.COMMAND_BY_NAME)


@dataclass(frozen=True)
class AuthenticationBlock:
    """One SUIT_Authentication_Block, decoded only as far as its headers (manifest 8.3)."""

    structure: str  # COSE_Sign1, COSE_Sign, COSE_Mac0, COSE_Mac
    alg: int | None  # for COSE_Sign: of the first signature
    kid: bytes | None
    raw: bytes = field(repr=False)

    @property
    def alg_name(self) -> str:
        return c.COSE_ALGORITHM_NAMES.get(self.alg, repr(self.alg))


@dataclass(frozen=True)
class Common:
    """SUIT_Common (manifest 8.4.5, TD 5.2.2)."""

    components: tuple[tuple[bytes, ...], ...]
    dependencies: Mapping[int, tuple[bytes, ...] | None]  # component index -> dependency prefix
    shared_sequence: tuple[Command, ...]


@dataclass(frozen=True)
class Manifest:
    version: int
    sequence_number: int
    common: Common
    reference_uri: str | None
    manifest_component_id: tuple[bytes, ...] | None
    # Sequences present in clear (in the manifest, or severed and carried in the envelope).
    command_sequences: Mapping[str, tuple[Command, ...]]
    # Members the manifest holds only as a digest (severed), by name.
    severed: Mapping[str, SuitDigest]
    text: Mapping[str, Any] | None  # decoded SUIT_Text_Map when available
    extensions: Mapping[int, Any]  # manifest members this code does not know


@dataclass(frozen=True)
class Envelope:
    """A structurally valid SUIT envelope; `verify_envelope` checks digest and signature."""

    tagged: bool
    members: tuple[tuple[int | str, bytes], ...] = field(repr=False)  # wire order
    authentication_wrapper: bytes = field(repr=False)
    digest: SuitDigest
    digest_bytes: bytes = field(repr=False)  # encoded SUIT_Digest = the COSE detached payload
    authentication_blocks: tuple[AuthenticationBlock, ...]
    manifest_bytes: bytes = field(repr=False)  # the encoded SUIT_Manifest (content of key 3)
    manifest: Manifest
    integrated_payloads: Mapping[str, bytes] = field(repr=False)
    severable_members: Mapping[str, bytes] = field(repr=False)  # severed members carried here
    delegation: bytes | None = field(repr=False)
    extensions: Mapping[int, bytes] = field(repr=False)

    @property
    def sequence_number(self) -> int:
        return self.manifest.sequence_number

    @property
    def component_ids(self) -> tuple[tuple[bytes, ...], ...]:
        return self.manifest.common.components

    @property
    def manifest_component_id(self) -> tuple[bytes, ...] | None:
        return self.manifest.manifest_component_id

    def computed_digest(self) -> SuitDigest:
        """The manifest digest recomputed from the bytes (algorithm of the envelope's digest)."""
        hash_factory = _HASHES.get(self.digest.algorithm)
        if hash_factory is None:
            raise SuitError(f"unsupported manifest digest algorithm {self.digest.algorithm_name}")
        return SuitDigest(
            self.digest.algorithm, hash_factory(cbor2.dumps(self.manifest_bytes)).digest()
        )


# --- parsing ----------------------------------------------------------------------------------


def parse_envelope(data: bytes) -> Envelope:
    """Decode a SUIT_Envelope, tagged (107) or untagged, and check its structure.

    Does not check the manifest digest or any signature: that is `verify_envelope`. Severed
    members carried in the envelope are checked against their digests in the manifest here.
    """
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise SuitError(f"not a SUIT envelope: expected bytes, got {type(data).__name__}")
    try:
        item = decode_deterministic(data, "envelope")
    except SuitError as exc:
        raise SuitError(f"not a SUIT envelope: {exc}") from None
    tagged = isinstance(item, cbor2.CBORTag)
    if tagged:
        if item.tag == c.TAG_MANIFEST:
            raise SuitError(
                "not a SUIT envelope: a bare SUIT_Manifest (tag 1070) without authentication"
            )
        if item.tag != c.TAG_ENVELOPE:
            raise SuitError(f"not a SUIT envelope: CBOR tag {item.tag} (expected 107 or no tag)")
        item = item.value
    if not isinstance(item, dict):
        raise SuitError(f"not a SUIT envelope: a CBOR {_cbor_type(item)}, expected a map")

    members: list[tuple[int | str, bytes]] = []
    for key, value in item.items():
        if not (is_int(key) or isinstance(key, str)):
            raise SuitError(
                f"not a SUIT envelope: member key {key!r} is neither an integer nor text"
            )
        if not isinstance(value, bytes):
            raise SuitError(f"envelope member {_member_name(key)} is not a byte string")
        members.append((key, value))
    if c.ENVELOPE_AUTHENTICATION_WRAPPER not in item:
        raise SuitError("not a SUIT envelope: no authentication-wrapper (2)")
    if c.ENVELOPE_MANIFEST not in item:
        raise SuitError("not a SUIT envelope: no manifest (3)")

    wrapper = item[c.ENVELOPE_AUTHENTICATION_WRAPPER]
    digest_bytes, digest, blocks = _parse_authentication_wrapper(wrapper)
    manifest_bytes = item[c.ENVELOPE_MANIFEST]

    severable_members: dict[str, bytes] = {}
    integrated: dict[str, bytes] = {}
    extensions: dict[int, bytes] = {}
    for key, value in members:
        if isinstance(key, str):
            integrated[key] = value
        elif key in c.SEVERABLE_MEMBERS:
            severable_members[c.SEVERABLE_MEMBERS[key]] = value
        elif key not in (
            c.ENVELOPE_AUTHENTICATION_WRAPPER,
            c.ENVELOPE_MANIFEST,
            c.ENVELOPE_DELEGATION,
        ):
            extensions[key] = value

    manifest = _parse_manifest(manifest_bytes, severable_members)
    return Envelope(
        tagged=tagged,
        members=tuple(members),
        authentication_wrapper=wrapper,
        digest=digest,
        digest_bytes=digest_bytes,
        authentication_blocks=blocks,
        manifest_bytes=manifest_bytes,
        manifest=manifest,
        integrated_payloads=MappingProxyType(integrated),
        severable_members=MappingProxyType(severable_members),
        delegation=item.get(c.ENVELOPE_DELEGATION),
        extensions=MappingProxyType(extensions),
    )


def envelope_to_bytes(
    envelope: Envelope, *, tagged: bool | None = None, omit: Iterable[str] = ()
) -> bytes:
    """Re-encode the envelope from its members, byte for byte as parsed.

    `tagged` overrides the tag (TEEP manifest-list carries untagged envelopes). `omit` drops
    severed members (by name, e.g. "text") or integrated payloads (by key); the signature
    stays valid because the manifest keeps their digests (manifest 8.6).
    """
    omit = set(omit)
    kept = []
    for key, value in envelope.members:
        name = c.SEVERABLE_MEMBERS.get(key) if isinstance(key, int) else key
        if name in omit:
            continue
        kept.append((key, value))
    body = bytearray(_head(5, len(kept)))
    for key, value in kept:
        body += cbor2.dumps(key) + cbor2.dumps(value)
    if envelope.tagged if tagged is None else tagged:
        return cbor2.dumps(cbor2.CBORTag(c.TAG_ENVELOPE, None))[:-1] + bytes(body)
    return bytes(body)


def _head(major: int, length: int) -> bytes:
    # The shortest CBOR head for (major type, length): RFC 8949 3 / 4.2.1.
    if length < 24:
        return bytes([major << 5 | length])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if length < 1 << (8 * size):
            return bytes([major << 5 | info]) + length.to_bytes(size, "big")
    raise SuitError("too many envelope members")


def _parse_authentication_wrapper(
    wrapper: bytes,
) -> tuple[bytes, SuitDigest, tuple[AuthenticationBlock, ...]]:
    array = decode_deterministic(wrapper, "authentication-wrapper")
    if not isinstance(array, list) or not array:
        raise SuitError("authentication-wrapper is not a non-empty array")
    if not all(isinstance(element, bytes) for element in array):
        raise SuitError("authentication-wrapper elements must be byte strings")
    digest = _parse_digest(decode_deterministic(array[0], "manifest digest"), "manifest digest")
    blocks = tuple(
        _parse_authentication_block(raw, index) for index, raw in enumerate(array[1:], 1)
    )
    return array[0], digest, blocks


def _parse_authentication_block(raw: bytes, index: int) -> AuthenticationBlock:
    where = f"authentication block {index}"
    item = decode_deterministic(raw, where)
    if not isinstance(item, cbor2.CBORTag) or item.tag not in _COSE_STRUCTURES:
        raise SuitError(
            f"{where} is not a tagged COSE_Sign1, COSE_Sign, COSE_Mac0 or COSE_Mac (manifest 8.3)"
        )
    structure = _COSE_STRUCTURES[item.tag]
    array = item.value
    expected = 5 if structure == "COSE_Mac" else 4
    if not isinstance(array, list) or len(array) != expected:
        raise SuitError(f"{where}: {structure} is not an array of {expected} elements")
    if array[2] is not None:
        raise SuitError(f"{where}: payload must be detached (nil), manifest 8.3")
    if structure in ("COSE_Sign1", "COSE_Sign"):
        try:
            message = cose.parse(raw)
        except CoseError as exc:
            raise SuitError(f"{where}: {exc}") from None
        first = message.signatures[0]
        return AuthenticationBlock(structure, first.alg, first.kid, raw)
    protected = _protected_map(array[0], where)
    unprotected = array[1]
    if not isinstance(unprotected, dict):
        raise SuitError(f"{where}: unprotected header is not a map")
    if not isinstance(array[3], (bytes, list)):
        raise SuitError(f"{where}: tag is not a byte string")
    alg = protected.get(c.HEADER_ALG)
    kid = protected.get(c.HEADER_KID, unprotected.get(c.HEADER_KID))
    if alg is not None and not is_int(alg):
        raise SuitError(f"{where}: alg is not an integer")
    if kid is not None and not isinstance(kid, bytes):
        raise SuitError(f"{where}: kid is not a byte string")
    return AuthenticationBlock(structure, alg, kid, raw)


def _protected_map(value: object, where: str) -> dict:
    if not isinstance(value, bytes):
        raise SuitError(f"{where}: protected header is not a byte string")
    if value == b"":
        return {}
    decoded = decode_deterministic(value, f"{where} protected header")
    if not isinstance(decoded, dict):
        raise SuitError(f"{where}: protected header does not wrap a map")
    return decoded


def _parse_digest(value: object, where: str) -> SuitDigest:
    if not isinstance(value, list) or len(value) < 2:
        raise SuitError(f"{where} is not a SUIT_Digest [algorithm-id, bytes]")
    algorithm, digest = value[0], value[1]
    if not is_int(algorithm):
        raise SuitError(f"{where} algorithm is not an integer")
    if not isinstance(digest, bytes):
        raise SuitError(f"{where} bytes are not a byte string")
    return SuitDigest(algorithm, digest)


def _parse_manifest(manifest_bytes: bytes, severable_members: dict[str, bytes]) -> Manifest:
    manifest = decode_deterministic(manifest_bytes, "manifest")
    if isinstance(manifest, cbor2.CBORTag):
        raise SuitError("manifest: must not be tagged inside an envelope")
    if not isinstance(manifest, dict):
        raise SuitError(f"manifest is a CBOR {_cbor_type(manifest)}, expected a map")
    for key in manifest:
        if not is_int(key):
            raise SuitError(f"manifest key {key!r} is not an integer")

    version = manifest.get(c.MANIFEST_VERSION)
    if version != c.MANIFEST_VERSION_1 or not is_uint(version):
        raise SuitError(f"manifest-version is {version!r}, expected 1 (manifest 8.4.1)")
    sequence_number = manifest.get(c.MANIFEST_SEQUENCE_NUMBER)
    if not is_uint(sequence_number):
        raise SuitError("manifest-sequence-number is missing or not an unsigned integer")
    if c.MANIFEST_COMMON not in manifest:
        raise SuitError("manifest has no common (3)")
    common = _parse_common(manifest[c.MANIFEST_COMMON])
    reference_uri = manifest.get(c.MANIFEST_REFERENCE_URI)
    if reference_uri is not None and not isinstance(reference_uri, str):
        raise SuitError("reference-uri is not a text string")
    manifest_component_id = manifest.get(c.MANIFEST_COMPONENT_ID)
    if manifest_component_id is not None:
        manifest_component_id = _component_id(manifest_component_id, "manifest-component-id")

    sequences: dict[str, tuple[Command, ...]] = {}
    severed: dict[str, SuitDigest] = {}
    text = None
    for key, name in c.MANIFEST_MEMBER_NAMES.items():
        if key not in manifest or (key not in c.COMMAND_SEQUENCE_NAMES and key != c.TEXT):
            continue
        value = manifest[key]
        if isinstance(value, list) and key in c.SEVERABLE_MEMBERS:
            digest = _parse_digest(value, f"{name} digest")
            severed[name] = digest
            carried = severable_members.get(name)
            if carried is None:
                continue  # severed and not delivered: fine, the processor skips it
            hash_factory = _HASHES.get(digest.algorithm)
            if hash_factory is None:
                algorithm = digest.algorithm_name
                raise SuitError(f"severable member {name} ({key}): unsupported digest {algorithm}")
            if not hmac.compare_digest(hash_factory(cbor2.dumps(carried)).digest(), digest.value):
                raise SuitError(
                    f"severable member {name} ({key}) digest does not match the manifest"
                )
            value = carried
        elif not isinstance(value, bytes):
            raise SuitError(f"manifest {name} ({key}) is neither a byte string nor a SUIT_Digest")
        elif name in severable_members:
            raise SuitError(
                f"envelope carries {name} ({key}) but the manifest holds it, not its digest"
            )
        if key == c.TEXT:
            text = _parse_text(value)
        else:
            sequences[name] = _parse_sequence(value, name, 0)
    for name in severable_members:
        if name not in severed:
            raise SuitError(f"envelope carries {name} but the manifest has no digest for it")

    extensions = {
        key: value for key, value in manifest.items() if key not in c.MANIFEST_MEMBER_NAMES
    }
    return Manifest(
        version=version,
        sequence_number=sequence_number,
        common=common,
        reference_uri=reference_uri,
        manifest_component_id=manifest_component_id,
        command_sequences=MappingProxyType(sequences),
        severed=MappingProxyType(severed),
        text=text,
        extensions=MappingProxyType(extensions),
    )


def _parse_common(value: object) -> Common:
    if not isinstance(value, bytes):
        raise SuitError("common is not a byte string")
    common = decode_deterministic(value, "common")
    if not isinstance(common, dict):
        raise SuitError("common is not a map")
    components: tuple[tuple[bytes, ...], ...] = ()
    if c.COMMON_COMPONENTS in common:
        raw_components = common[c.COMMON_COMPONENTS]
        if not isinstance(raw_components, list) or not raw_components:
            raise SuitError("common components is not a non-empty array")
        components = tuple(
            _component_id(component, f"common components[{index}]")
            for index, component in enumerate(raw_components)
        )
    dependencies: dict[int, tuple[bytes, ...] | None] = {}
    if c.COMMON_DEPENDENCIES in common:
        raw_dependencies = common[c.COMMON_DEPENDENCIES]
        if not isinstance(raw_dependencies, dict) or not raw_dependencies:
            raise SuitError("common dependencies is not a non-empty map (TD 5.2.2)")
        for index, metadata in raw_dependencies.items():
            if not is_uint(index):
                raise SuitError("common dependencies: key is not a component index")
            if not isinstance(metadata, dict):
                raise SuitError(f"common dependencies[{index}] is not a map")
            prefix = metadata.get(c.DEPENDENCY_PREFIX)
            dependencies[index] = (
                None
                if prefix is None
                else _component_id(prefix, f"common dependencies[{index}] dependency-prefix")
            )
    shared: tuple[Command, ...] = ()
    if c.COMMON_SHARED_SEQUENCE in common:
        shared = _parse_sequence(common[c.COMMON_SHARED_SEQUENCE], "shared-sequence", 0)
    return Common(components, MappingProxyType(dependencies), shared)


def _component_id(value: object, where: str) -> tuple[bytes, ...]:
    # SUIT_Component_Identifier = [* bstr] (manifest 8.4.5.1).
    if not isinstance(value, list) or not all(isinstance(part, bytes) for part in value):
        raise SuitError(f"{where} is not a component identifier (an array of byte strings)")
    return tuple(value)


def _parse_sequence(value: object, where: str, depth: int) -> tuple[Command, ...]:
    if depth > _MAX_NESTING:
        raise SuitError(f"{where}: command sequences nested too deeply")
    if not isinstance(value, bytes):
        raise SuitError(f"{where} is not a byte string (a bstr-wrapped command sequence)")
    array = decode_deterministic(value, where)
    if not isinstance(array, list) or not array:
        raise SuitError(f"{where} is not a non-empty command sequence array")
    if len(array) % 2:
        raise SuitError(
            f"{where}: command sequence has an odd number of elements (command without argument)"
        )
    commands = []
    for offset in range(0, len(array), 2):
        code, argument = array[offset], array[offset + 1]
        here = f"{where}[{offset // 2}]"
        if not is_int(code):
            raise SuitError(f"{here}: command id {code!r} is not an integer")
        name = _name_from_code(code, c.COMMAND_NAMES, "command")
        commands.append(Command(name, _parse_argument(code, argument, f"{here} {name}", depth)))
    return tuple(commands)


def _parse_argument(code: int, argument: object, where: str, depth: int) -> Any:
    if code in c.PARAMETER_COMMANDS:
        return _parse_parameters(argument, where)
    if code == c.DIRECTIVE_SET_COMPONENT_INDEX:
        if argument is True or is_uint(argument):
            return argument
        if isinstance(argument, list) and argument and all(is_uint(i) for i in argument):
            return tuple(argument)
        raise SuitError(f"{where}: argument is not a component index, true or a list of indices")
    if code == c.DIRECTIVE_RUN_SEQUENCE:
        return _parse_sequence(argument, where, depth + 1)
    if code == c.DIRECTIVE_TRY_EACH:
        if not isinstance(argument, list) or len(argument) < 2:
            raise SuitError(f"{where}: argument is not an array of at least two sequences")
        trailing_nil = argument[-1] is None
        options = argument[:-1] if trailing_nil else argument
        if len(options) < 2:
            raise SuitError(f"{where}: needs at least two sequences to try")
        parsed = tuple(
            _parse_sequence(option, f"{where} option {i}", depth + 1)
            for i, option in enumerate(options)
        )
        return parsed + ((None,) if trailing_nil else ())
    if code < 0:
        # suit-command-custom (manifest 8.4.11): bstr / tstr / int / nil.
        if argument is None or isinstance(argument, (bytes, str)) or is_int(argument):
            return argument
        raise SuitError(f"{where}: custom command argument is not bstr, tstr, int or nil")
    if code in c.COMMAND_NAMES:
        if not is_uint(argument):
            raise SuitError(f"{where}: argument is not a reporting policy (unsigned integer)")
        return argument
    return argument  # an extension command we do not know: keep its argument as decoded


def _parse_parameters(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict) or not value:
        raise SuitError(f"{where}: argument is not a non-empty parameter map")
    parameters: dict[str, Any] = {}
    for key, parameter in value.items():
        if not is_int(key):
            raise SuitError(f"{where}: parameter key {key!r} is not an integer")
        name = _name_from_code(key, c.PARAMETER_NAMES, "parameter")
        parameters[name] = _parse_parameter(key, parameter, f"{where} {name}")
    return MappingProxyType(parameters)


def _parse_parameter(key: int, value: object, where: str) -> Any:
    if key == c.PARAMETER_VENDOR_IDENTIFIER:
        if isinstance(value, bytes) or (
            isinstance(value, cbor2.CBORTag)
            and value.tag == c.TAG_CBOR_PEN
            and isinstance(value.value, bytes)
        ):
            return value
        raise SuitError(f"{where} is not a UUID byte string or a CBOR PEN (tag 112)")
    if key in c.BSTR_PARAMETERS:
        if not isinstance(value, bytes):
            raise SuitError(f"{where} is not a byte string")
        return value
    if key == c.PARAMETER_IMAGE_DIGEST:
        if not isinstance(value, bytes):
            raise SuitError(f"{where} is not a bstr-wrapped SUIT_Digest")
        return _parse_digest(decode_deterministic(value, where), where)
    if key in c.UINT_PARAMETERS:
        if not is_uint(value):
            raise SuitError(f"{where} is not an unsigned integer")
        return value
    if key in c.BOOL_PARAMETERS:
        if not isinstance(value, bool):
            raise SuitError(f"{where} is not a boolean")
        return value
    if key in c.TEXT_PARAMETERS:
        if not isinstance(value, str):
            raise SuitError(f"{where} is not a text string")
        return value
    if key < 0 and not (isinstance(value, (bytes, str, bool)) or is_int(value)):
        raise SuitError(f"{where}: custom parameter is not int, bool, tstr or bstr")
    return value


def _parse_text(value: bytes) -> Mapping[str, Any]:
    text = decode_deterministic(value, "text")
    if not isinstance(text, dict) or not text:
        raise SuitError("text is not a non-empty map of languages")
    result: dict[str, Any] = {}
    for language, entries in text.items():
        if not isinstance(language, str):
            raise SuitError(f"text: language tag {language!r} is not a text string")
        if not isinstance(entries, dict):
            raise SuitError(f"text[{language}] is not a map")
        decoded: dict[Any, Any] = {}
        for key, entry in entries.items():
            if is_int(key):
                if not isinstance(entry, str):
                    raise SuitError(f"text[{language}][{key}] is not a text string")
                decoded[_name_from_code(key, c.TEXT_NAMES, "text")] = entry
            elif isinstance(key, tuple) and all(isinstance(part, bytes) for part in key):
                if not isinstance(entry, dict):
                    raise SuitError(f"text[{language}] component entry is not a map")
                component: dict[str, str] = {}
                for ckey, centry in entry.items():
                    if not is_int(ckey) or not isinstance(centry, str):
                        raise SuitError(
                            f"text[{language}] component entry {ckey!r} is not int => text"
                        )
                    component[_name_from_code(ckey, c.TEXT_COMPONENT_NAMES, "text")] = centry
                decoded[key] = MappingProxyType(component)
            else:
                raise SuitError(
                    f"text[{language}]: key {key!r} is neither a text key nor a component id"
                )
        result[language] = MappingProxyType(decoded)
    return MappingProxyType(result)


def _name_from_code(code: int, table: Mapping[int, str], kind: str) -> str:
    if code in table:
        return table[code]
    return f"custom-{kind}({code})" if code < 0 else f"{kind}({code})"


def _code_from_name(name: str, table: Mapping[str, int]) -> int:
    # inverse of _name_from_code: "command(40)" / "custom-command(-300)" carry their number
    if name in table:
        return table[name]
    return int(name[name.index("(") + 1 : -1])


def _member_name(key: object) -> str:
    names = {1: "delegation", 2: "authentication-wrapper", 3: "manifest", **c.SEVERABLE_MEMBERS}
    return f"{names[key]} ({key})" if key in names else repr(key)


def _cbor_type(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, cbor2.CBORTag):
        return f"tag {value.tag}"
    return {bytes: "byte string", str: "text string", int: "integer", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


# --- verification -----------------------------------------------------------------------------

VerificationKey = TeepKey | bytes


def verify_envelope(
    envelope: Envelope | bytes,
    keys: Sequence[VerificationKey],
    *,
    allowed_algs: Sequence[int] = c.SIGNATURE_ALGORITHMS + (c.HMAC_256_256,),
) -> VerificationKey:
    """Check the manifest digest and that an authentication block verifies; return the key that did.

    `keys`: TeepKeys for COSE_Sign1 / COSE_Sign blocks, bytes for HMAC (COSE_Mac0, MTI 3.1).
    Manifest 8.3: blocks are over the same digest; one verifying with a trusted key suffices.
    """
    if not isinstance(envelope, Envelope):
        envelope = parse_envelope(envelope)
    if isinstance(keys, (TeepKey, bytes)):
        keys = [keys]
    computed = envelope.computed_digest()
    if not hmac.compare_digest(computed.value, envelope.digest.value):
        raise SuitError("manifest digest does not match the manifest bytes")
    if not envelope.authentication_blocks:
        raise SuitError("envelope is not signed: its authentication wrapper holds only the digest")
    if not keys:
        raise SuitError("no key given to verify the envelope with")
    problems = []
    for index, block in enumerate(envelope.authentication_blocks, 1):
        for key in keys:
            try:
                if _verify_block(block, key, envelope.digest_bytes, allowed_algs):
                    return key
            except SuitError as exc:
                problems.append(f"block {index}: {exc}")
    detail = f" ({'; '.join(dict.fromkeys(problems))})" if problems else ""
    raise SuitError(f"signature does not verify with the signer's key{detail}")


def _verify_block(
    block: AuthenticationBlock, key: VerificationKey, payload: bytes, allowed_algs: Sequence[int]
) -> bool:
    if block.structure in ("COSE_Sign1", "COSE_Sign"):
        if not isinstance(key, TeepKey):
            return False
        try:
            cose.verify(block.raw, key, detached_payload=payload, allowed_algs=tuple(allowed_algs))
        except CoseError as exc:
            raise SuitError(str(exc)) from None
        return True
    if block.structure == "COSE_Mac0":
        if not isinstance(key, (bytes, bytearray)):
            return False
        if block.alg not in _HMAC_ALGORITHMS or block.alg not in allowed_algs:
            raise SuitError(f"MAC algorithm {block.alg_name} is not supported")
        array = cbor2.loads(block.raw).value
        mac_structure = cbor2.dumps(["MAC0", array[0], b"", payload])  # RFC 9052 6.3
        tag = hmac.new(bytes(key), mac_structure, _HMAC_ALGORITHMS[block.alg]).digest()
        if not isinstance(array[3], bytes) or not hmac.compare_digest(tag, array[3]):
            raise SuitError("COSE_Mac0 tag does not verify")
        return True
    raise SuitError(f"{block.structure} authentication blocks are not supported")


def check_component_allowed(
    envelope: Envelope,
    allowed_component_ids: Iterable[Sequence[bytes | bool]],
    *,
    include_manifest_component_id: bool = False,
) -> None:
    """Refuse an envelope that names a component its signer may not touch (report reason 7).

    Every component in common, and with `include_manifest_component_id` the manifest's own id,
    must equal one of `allowed_component_ids`; an allowed entry ending in True matches every
    component with that prefix (the wildcard of SUIT_Component_Capability, report 6).
    """
    allowed = [list(entry) for entry in allowed_component_ids]
    for entry in allowed:
        body = entry[:-1] if entry and entry[-1] is True else entry
        if not all(isinstance(part, (bytes, bytearray)) for part in body):
            raise SuitError(
                "allowed component ids must be lists of byte strings (optionally ending in True)"
            )
    wanted = list(envelope.component_ids)
    if include_manifest_component_id and envelope.manifest_component_id is not None:
        wanted.append(envelope.manifest_component_id)
    for component in wanted:
        if not any(_component_matches(component, entry) for entry in allowed):
            raise SuitError(
                f"component {format_component_id(component)} not allowed for this signer"
            )


def _component_matches(component: Sequence[bytes], allowed: list) -> bool:
    if allowed and allowed[-1] is True:
        prefix = [bytes(part) for part in allowed[:-1]]
        return list(component[: len(prefix)]) == prefix
    return list(component) == [bytes(part) for part in allowed]


def format_component_id(component: Sequence[bytes]) -> str:
    """['TEEP-Device', 'SecureFS', h'8d82573a...', 'ta']: printable parts as text, others as hex."""
    return "[" + ", ".join(_part_text(part) for part in component) + "]"


def _part_text(part: bytes) -> str:
    text = _printable(part)
    return repr(text) if text is not None else f"h'{part.hex()}'"


def _printable(part: bytes) -> str | None:
    try:
        text = part.decode("ascii")
    except UnicodeDecodeError:
        return None
    return text if text and text.isprintable() else None


# --- JSON view --------------------------------------------------------------------------------


def envelope_to_json(envelope: Envelope) -> dict[str, Any]:
    """A JSON-serialisable view for suit_inspect and the admin: names, text, hex for bytes."""
    manifest = envelope.manifest
    view: dict[str, Any] = {
        "tagged": envelope.tagged,
        "digest": digest_to_json(envelope.digest),
        "authentication": [
            {
                "structure": block.structure,
                "alg": block.alg,
                "alg_name": block.alg_name,
                "kid": None if block.kid is None else block.kid.hex(),
            }
            for block in envelope.authentication_blocks
        ],
        "manifest": {
            "version": manifest.version,
            "sequence_number": manifest.sequence_number,
            "reference_uri": manifest.reference_uri,
            "components": [
                component_id_to_json(component) for component in manifest.common.components
            ],
            "dependencies": {
                str(index): None
                if prefix is None
                else {"dependency-prefix": component_id_to_json(prefix)}
                for index, prefix in manifest.common.dependencies.items()
            },
            "manifest_component_id": (
                None
                if manifest.manifest_component_id is None
                else component_id_to_json(manifest.manifest_component_id)
            ),
            "shared_sequence": sequence_to_json(manifest.common.shared_sequence),
            "command_sequences": {
                name: sequence_to_json(seq) for name, seq in manifest.command_sequences.items()
            },
            "severed": {name: digest_to_json(digest) for name, digest in manifest.severed.items()},
            "text": None if manifest.text is None else _text_to_json(manifest.text),
            "extensions": {
                str(key): value_to_json(value) for key, value in manifest.extensions.items()
            },
        },
        "severable_members": sorted(envelope.severable_members),
        "integrated_payloads": {
            key: {"size": len(value), "sha256": hashlib.sha256(value).hexdigest()}
            for key, value in envelope.integrated_payloads.items()
        },
        "delegation": envelope.delegation is not None,
        "extensions": {
            str(key): {"size": len(value)} for key, value in envelope.extensions.items()
        },
    }
    return view


def component_id_to_json(component: Sequence[bytes]) -> list[str]:
    """Each part as text when printable ASCII, else as h'..' hex."""
    return [_printable(part) or f"h'{part.hex()}'" for part in component]


def digest_to_json(digest: SuitDigest) -> dict[str, Any]:
    return {"algorithm": digest.algorithm_name, "value": digest.value.hex()}


def sequence_to_json(sequence: Sequence[Command]) -> list[dict[str, Any]]:
    return [
        {"command": command.name, "argument": _argument_to_json(command)} for command in sequence
    ]


def _argument_to_json(command: Command) -> Any:
    argument = command.argument
    if command.name == "directive-run-sequence":
        return sequence_to_json(argument)
    if command.name == "directive-try-each":
        return [None if option is None else sequence_to_json(option) for option in argument]
    return value_to_json(argument)


def value_to_json(value: Any) -> Any:
    """Generic conversion: bytes -> hex, SuitDigest -> dict, tags -> {"tag", "value"}."""
    if isinstance(value, SuitDigest):
        return digest_to_json(value)
    if isinstance(value, Command):
        return {"command": value.name, "argument": _argument_to_json(value)}
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, cbor2.CBORTag):
        return {"tag": value.tag, "value": value_to_json(value.value)}
    if isinstance(value, Mapping):
        return {_key_to_json(key): value_to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [value_to_json(item) for item in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return repr(value)


def _key_to_json(key: Any) -> str:
    if isinstance(key, tuple) and all(isinstance(part, bytes) for part in key):
        return "/".join(component_id_to_json(key))
    if isinstance(key, bytes):
        return key.hex()
    return str(key)


def _text_to_json(text: Mapping[str, Any]) -> dict[str, Any]:
    return {
        language: {_key_to_json(key): value_to_json(value) for key, value in entries.items()}
        for language, entries in text.items()
    }


# --- building ---------------------------------------------------------------------------------


def build_envelope(
    *,
    component_id: Sequence[bytes],
    sequence_number: int,
    payload: bytes,
    signing_key: TeepKey,
    payload_uri: str | None = None,
    integrated_key: str = "#tc",
    manifest_component_id: Sequence[bytes] | None = None,
    vendor_id: bytes | None = None,
    class_id: bytes | None = None,
    alg: int | None = None,
    kid: bytes | None | EllipsisType = ...,
    text: Mapping[str, str] | None = None,
    text_language: str = "en",
    sever_text: bool = True,
    tagged: bool = False,
) -> bytes:
    """A signed SUIT envelope installing `payload` as one component (TEEP Appendix E Examples 1-2).

    common: components [component_id]; shared-sequence override-parameters (vendor-identifier,
    class-identifier, image-digest SHA-256, image-size) + condition-vendor/class-identifier.
    install: override-parameters uri (`payload_uri`, or `integrated_key` with the payload
    integrated in the envelope under it), fetch, condition-image-match. uninstall: unlink
    (TD 6). manifest-component-id (TD 5.2.1) when given. `text` (names of manifest 11.6/11.7,
    e.g. "manifest-description", "component-version") goes in suit-text, severed into the
    envelope by default (manifest 8.6). Signed with a COSE_Sign1 over the bstr-wrapped
    SUIT_Digest (8.3); `kid` defaults to the key's RFC 9679 thumbprint, None omits it.
    Untagged by default: TEEP manifest-list carries untagged envelopes.
    """
    component = _check_component_id(component_id, "component_id")
    if not is_uint(sequence_number):
        raise SuitError("sequence_number must be an unsigned integer")
    if isinstance(payload, (bytearray, memoryview)):
        payload = bytes(payload)
    if not isinstance(payload, bytes):
        raise SuitError("payload must be bytes")
    if payload_uri is None:
        if (
            not isinstance(integrated_key, str)
            or not integrated_key.startswith("#")
            or len(integrated_key) < 2
        ):
            raise SuitError("integrated_key must be a text starting with '#' (manifest 7.5)")
        uri = integrated_key
    elif isinstance(payload_uri, str) and payload_uri:
        uri = payload_uri
    else:
        raise SuitError("payload_uri must be a non-empty text or None")
    for name, identifier in (("vendor_id", vendor_id), ("class_id", class_id)):
        if identifier is not None and (not isinstance(identifier, bytes) or len(identifier) != 16):
            raise SuitError(f"{name} must be a 16-byte UUID (manifest 8.4.8.3)")
    if not isinstance(signing_key, TeepKey) or not signing_key.is_private:
        raise SuitError("signing_key must be a private TeepKey")

    parameters: dict[int, Any] = {}
    conditions: list[Any] = []
    if vendor_id is not None:
        parameters[c.PARAMETER_VENDOR_IDENTIFIER] = vendor_id
        conditions += [c.CONDITION_VENDOR_IDENTIFIER, c.REPORT_ALL]
    if class_id is not None:
        parameters[c.PARAMETER_CLASS_IDENTIFIER] = class_id
        conditions += [c.CONDITION_CLASS_IDENTIFIER, c.REPORT_ALL]
    parameters[c.PARAMETER_IMAGE_DIGEST] = SuitDigest.sha256(payload).to_cbor()
    parameters[c.PARAMETER_IMAGE_SIZE] = len(payload)
    shared_sequence = [c.DIRECTIVE_OVERRIDE_PARAMETERS, parameters, *conditions]
    common = {
        c.COMMON_COMPONENTS: [list(component)],
        c.COMMON_SHARED_SEQUENCE: encode(shared_sequence),
    }

    install = [
        c.DIRECTIVE_OVERRIDE_PARAMETERS,
        {c.PARAMETER_URI: uri},
        c.DIRECTIVE_FETCH,
        c.REPORT_ALL,
        c.CONDITION_IMAGE_MATCH,
        c.REPORT_ALL,
    ]
    uninstall = [c.DIRECTIVE_UNLINK, c.REPORT_ALL]
    manifest: dict[int, Any] = {
        c.MANIFEST_VERSION: c.MANIFEST_VERSION_1,
        c.MANIFEST_SEQUENCE_NUMBER: sequence_number,
        c.MANIFEST_COMMON: encode(common),
    }
    if manifest_component_id is not None:
        manifest[c.MANIFEST_COMPONENT_ID] = list(
            _check_component_id(manifest_component_id, "manifest_component_id")
        )
    manifest[c.COMMAND_SEQUENCE_BY_NAME["install"]] = encode(install)
    severed_members: dict[int, bytes] = {}
    if text:
        text_bytes = encode(_build_text(text, text_language, component))
        if sever_text:
            severed_members[c.TEXT] = text_bytes
            manifest[c.TEXT] = [c.SHA256, hashlib.sha256(cbor2.dumps(text_bytes)).digest()]
        else:
            manifest[c.TEXT] = text_bytes
    manifest[c.COMMAND_SEQUENCE_BY_NAME["uninstall"]] = encode(uninstall)
    manifest_bytes = encode(manifest)

    digest_bytes = SuitDigest.sha256(cbor2.dumps(manifest_bytes)).to_cbor()
    try:
        signature = cose.sign1(digest_bytes, signing_key, alg, kid=kid, tagged=True, detached=True)
    except CoseError as exc:
        raise SuitError(f"cannot sign the manifest: {exc}") from None
    wrapper = cbor2.dumps([digest_bytes, signature])

    envelope: dict[int | str, bytes] = {
        c.ENVELOPE_AUTHENTICATION_WRAPPER: wrapper,
        c.ENVELOPE_MANIFEST: manifest_bytes,
        **severed_members,
    }
    if payload_uri is None:
        envelope[integrated_key] = payload
    body = encode(envelope)
    if tagged:
        return cbor2.dumps(cbor2.CBORTag(c.TAG_ENVELOPE, None))[:-1] + body
    return body


def _check_component_id(value: object, name: str) -> tuple[bytes, ...]:
    if isinstance(value, (bytes, str)) or not isinstance(value, Sequence):
        raise SuitError(f"{name} must be a list of byte strings")
    parts = tuple(value)
    if not parts or not all(isinstance(part, bytes) for part in parts):
        raise SuitError(f"{name} must be a non-empty list of byte strings")
    return parts


def _build_text(text: Mapping[str, str], language: str, component: tuple[bytes, ...]) -> dict:
    if not isinstance(language, str) or not language:
        raise SuitError("text_language must be a language tag")
    manifest_level: dict[Any, Any] = {}
    component_level: dict[int, str] = {}
    for name, value in text.items():
        if not isinstance(value, str):
            raise SuitError(f"text {name!r} must be a text string")
        if name in c.TEXT_BY_NAME:
            manifest_level[c.TEXT_BY_NAME[name]] = value
        elif name in c.TEXT_COMPONENT_BY_NAME:
            component_level[c.TEXT_COMPONENT_BY_NAME[name]] = value
        else:
            known = sorted([*c.TEXT_BY_NAME, *c.TEXT_COMPONENT_BY_NAME])
            raise SuitError(f"unknown text key {name!r}; expected one of {', '.join(known)}")
    if component_level:
        manifest_level[tuple(component)] = component_level
    return {language: manifest_level}
