"""The agent's SUIT manifest processor: one envelope from an Update's manifest-list in, the
components to install (or a failure saying where it stopped) out. Nothing is written here.

It runs what the TAM's envelopes use (TEEP Appendix E, apps.teep.wire.suit.build_envelope
and apps.teep.wire.suit.personalization) and a little more, per draft-ietf-suit-manifest-37
Section 6 / 8.4.10: the shared sequence before each of dependency-resolution, payload-fetch,
install and validate; override-/set-parameters, set-component-index, run-sequence, try-each;
condition vendor-/class-identifier and image-match; fetch (a URI, or "#key" for a payload
integrated in the envelope) and write. A write whose parameters carry encryption-info decrypts
the content with the device's key-agreement key (firmware encryption 4, 5.2; KDF context
"SUIT Payload Encryption"); a failed decryption is operation-failed.

Dependencies (trust domains 5.2.2, 6): a dependency's envelope is taken from the installed
manifest with the digest the dependent names (else fetched, or read from the envelope when its
uri is "#key"), and directive-process-dependency checks its digest and signature. This agent
installs a dependency only through its own manifest (an Update lists it first, TEEP 4.4):
process-dependency on a dependency that is not installed fails with component-unsupported.
As in TEEP Appendix E Example 3, a dependency's component index may lie beyond the
components list.
Anything else fails with command-unsupported (SUIT report 9.7 reason 5), an encrypted fetch
with parameter-unsupported.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cbor2

from apps.teep.wire.errors import SuitError
from apps.teep.wire.suit import Envelope, SuitDigest, format_component_id, parse_envelope
from apps.teep.wire.suit import constants as c
from apps.teep.wire.suit.report import ReportFailure, SuitRecord

from .state import ComponentId, DeviceIdentity, StagedComponent

# SuitRecord.section for failures outside a command sequence: the manifest key concerned.
SECTION_ENVELOPE = 0  # parsing or authenticating the envelope
SECTION_SEQUENCE_NUMBER = c.MANIFEST_SEQUENCE_NUMBER  # rollback (manifest 8.4.2)
SECTION_COMMON = c.MANIFEST_COMMON  # the shared sequence lives in common
# Commands that act on a dependency slot rather than on a component image (TD 6).
_DEPENDENCY_COMMANDS = frozenset(
    {
        "directive-fetch",
        "directive-process-dependency",
        "condition-dependency-integrity",
        "condition-is-dependency",
        "condition-image-match",
    }
)

Fetcher = Callable[[str, "int | None"], bytes]
# (SUIT_Encryption_Info, ciphertext) -> plaintext; raises when the key does not open it.
Decryptor = Callable[[bytes, bytes], bytes]
# The envelope of an installed manifest with this manifest digest, or None.
InstalledManifest = Callable[[SuitDigest], "bytes | None"]
# Authenticates a dependency's envelope (raises SuitError when no trusted key signed it).
DependencyVerifier = Callable[[Envelope], None]


class ManifestFailure(Exception):
    """Processing stopped: `reason` is a SUIT_Report_Reasons name (report 9.7)."""

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        section: int = SECTION_ENVELOPE,
        offset: int = 0,
        component_index: int = 0,
        properties: Mapping[str, Any] | None = None,
    ):
        super().__init__(message)
        self.reason = reason
        self.section = section
        self.offset = offset
        self.component_index = component_index
        self.properties = dict(properties or {})

    def report_failure(self, code: int = 1) -> ReportFailure:
        record = SuitRecord((), self.section, self.offset, self.component_index, self.properties)
        return ReportFailure(code, c.REPORT_REASON_BY_NAME[self.reason], record)


@dataclass
class _Context:
    params: dict[int, dict[str, Any]]
    images: dict[int, bytes] = field(default_factory=dict)
    current: list[int] = field(default_factory=lambda: [0])
    # Dependency envelopes fetched in dependency-resolution, by component index (TD 5.5).
    dependencies: dict[int, bytes] = field(default_factory=dict)

    def copy(self) -> _Context:
        return _Context(
            {index: dict(p) for index, p in self.params.items()},
            dict(self.images),
            list(self.current),
            dict(self.dependencies),
        )


def process_envelope(
    envelope: Envelope,
    *,
    fetch: Fetcher,
    installed_image: Callable[[ComponentId], bytes | None],
    identity: DeviceIdentity | None = None,
    decrypt: Decryptor | None = None,
    installed_manifest: InstalledManifest | None = None,
    verify_dependency: DependencyVerifier | None = None,
) -> list[StagedComponent]:
    """Run the update procedure of an authenticated envelope; the components it produced."""
    manifest = envelope.manifest
    components = envelope.component_ids
    if manifest.common.dependencies and verify_dependency is None:
        raise ManifestFailure(
            "component-unsupported",
            "manifests with dependencies need a way to authenticate them",
            section=SECTION_COMMON,
        )
    if not components:
        raise ManifestFailure(
            "component-unsupported", "the manifest names no component", section=SECTION_COMMON
        )
    # Manifest 8.4.6: payload-fetch fetches into the component, install copies into place; a
    # TEE agent keeps what was fetched either way, so payload-fetch alone installs (AttesTAM's
    # envelopes carry only payload-fetch).
    if not {"install", "payload-fetch"} & set(manifest.command_sequences):
        severed = {"install", "payload-fetch"} & set(manifest.severed)
        reason = "severing-unsupported" if severed else "command-unsupported"
        raise ManifestFailure(
            reason, "the envelope carries no install or payload-fetch sequence", section=20
        )

    raw = _raw_sequences(envelope)
    runner = _Runner(
        envelope,
        fetch,
        installed_image,
        identity or DeviceIdentity(),
        decrypt=decrypt,
        installed_manifest=installed_manifest or (lambda digest: None),
        verify_dependency=verify_dependency,
    )
    context = _Context({index: {} for index in runner.indices})
    # Manifest 6 / TD 5.5: dependencies are resolved before any payload is fetched.
    for name in ("dependency-resolution", "payload-fetch", "install", "validate"):
        if name not in manifest.command_sequences:
            continue
        context.current = [0]
        if manifest.common.shared_sequence:
            runner.run(
                manifest.common.shared_sequence, context, SECTION_COMMON, raw.get("shared-sequence")
            )
        section = c.COMMAND_SEQUENCE_BY_NAME[name]
        runner.run(manifest.command_sequences[name], context, section, raw.get(name))

    staged = [
        StagedComponent(tuple(components[index]), image)
        for index, image in sorted(context.images.items())
        if index < len(components)
    ]
    if not staged:
        raise ManifestFailure(
            "operation-failed", "the install sequence produced no image", section=20
        )
    return staged


class _Runner:
    def __init__(
        self,
        envelope,
        fetch,
        installed_image,
        identity,
        *,
        decrypt=None,
        installed_manifest=None,
        verify_dependency=None,
    ):
        self.envelope = envelope
        self.fetch = fetch
        self.installed_image = installed_image
        self.identity = identity
        self.decrypt = decrypt
        self.installed_manifest = installed_manifest
        self.verify_dependency = verify_dependency
        self.components = envelope.component_ids
        self.dependencies = envelope.manifest.common.dependencies
        self.indices = sorted(set(range(len(self.components))) | set(self.dependencies))

    def run(self, commands: Sequence, context: _Context, section: int, raw: bytes | None) -> None:
        offsets = _command_offsets(raw) if raw else []
        for index, command in enumerate(commands):
            offset = offsets[index] if index < len(offsets) else 0
            self.execute(command, context, section, offset)

    def execute(self, command, context: _Context, section: int, offset: int) -> None:
        name, argument = command.name, command.argument

        def fail(reason: str, message: str, index: int = 0, properties=None):
            raise ManifestFailure(
                reason,
                message,
                section=section,
                offset=offset,
                component_index=index,
                properties=properties,
            )

        if name == "directive-set-component-index":
            if argument is True:
                context.current = list(self.indices)
            else:
                indices = [argument] if isinstance(argument, int) else list(argument)
                if any(i not in context.params for i in indices):
                    fail("component-unsupported", f"component index {argument} out of range")
                context.current = indices
            return
        if name == "directive-run-sequence":
            for inner in argument:
                self.execute(inner, context, section, offset)
            return
        if name == "directive-try-each":
            options = [option for option in argument if option is not None]
            last = None
            for option in options:
                attempt = context.copy()
                try:
                    for inner in option:
                        self.execute(inner, attempt, section, offset)
                except ManifestFailure as failure:
                    last = failure
                    continue
                context.params, context.images, context.current, context.dependencies = (
                    attempt.params,
                    attempt.images,
                    attempt.current,
                    attempt.dependencies,
                )
                return
            if argument and argument[-1] is None:
                return  # the trailing nil: "none of them" is allowed (manifest 8.4.10.2)
            raise last or ManifestFailure("condition-failed", "no try-each option succeeded")

        for index in context.current:
            params = context.params[index]
            if name == "directive-override-parameters":
                params.update(argument)
            elif name == "directive-set-parameters":
                for key, value in argument.items():
                    params.setdefault(key, value)
            elif name in ("condition-vendor-identifier", "condition-class-identifier"):
                self._identity_condition(name, params, index, fail)
            elif index in self.dependencies and name in _DEPENDENCY_COMMANDS:
                self._dependency_command(name, context, index, fail)
            elif name == "condition-image-match":
                self._image_match(context, index, fail)
            elif name == "directive-fetch":
                if "encryption-info" in params:
                    fail("parameter-unsupported", "encrypted payloads are not supported", index)
                uri = params.get("uri")
                if not uri:
                    fail("parameter-unsupported", "directive-fetch without a uri parameter", index)
                if uri.startswith("#"):
                    image = self.envelope.integrated_payloads.get(uri)
                    if image is None:
                        fail(
                            "operation-failed",
                            f"no integrated payload {uri!r} in the envelope",
                            index,
                        )
                else:
                    try:
                        image = self.fetch(uri, params.get("image-size"))
                    except Exception as exc:  # noqa: BLE001 - any fetch problem fails the manifest
                        fail("operation-failed", f"fetch failed: {exc}", index)
                context.images[index] = image
            elif name == "directive-write":
                content = params.get("content")
                if content is None:
                    fail(
                        "parameter-unsupported",
                        "directive-write without a content parameter",
                        index,
                    )
                info = params.get("encryption-info")
                if info is not None:
                    content = self._decrypt(info, content, index, fail)
                context.images[index] = content
            elif name in ("condition-is-dependency", "directive-process-dependency"):
                fail("condition-failed", f"{name}: component {index} is not a dependency", index)
            elif name == "directive-invoke":
                pass  # nothing runs in a simulated TEE
            elif name == "condition-abort":
                fail("condition-failed", "condition-abort", index)
            else:
                fail("command-unsupported", f"{name} is not supported by this agent", index)

    def _identity_condition(self, name: str, params: dict, index: int, fail) -> None:
        """Manifest 8.4.10.1: the id parameter must be set and be one this device matches.
        A mismatch is condition-failed; the record's properties carry this device's own id
        (report 3: "the actual value of ... class identifier")."""
        parameter = name.removeprefix("condition-")  # vendor-identifier / class-identifier
        mine = (
            self.identity.vendor_ids if parameter == "vendor-identifier"
            else self.identity.class_ids
        )
        theirs = params.get(parameter)
        if theirs is None:
            fail("parameter-unsupported", f"{parameter} is not set", index)
        if mine and theirs not in mine:
            fail(
                "condition-failed",
                f"{parameter} {_uuid_text(theirs)} does not match this device",
                index,
                {parameter: mine[0]},
            )

    def _decrypt(self, info: bytes, ciphertext: bytes, index: int, fail) -> bytes:
        """Firmware encryption 4: write with encryption-info stores the decrypted content."""
        if self.decrypt is None:
            fail("parameter-unsupported", "encrypted content and no decryption key", index)
        try:
            return self.decrypt(info, ciphertext)
        except Exception as exc:  # noqa: BLE001 - wrong key, tampered data: the write fails
            fail("operation-failed", f"decryption failed: {exc}", index)

    def _dependency_command(self, name: str, context: _Context, index: int, fail) -> None:
        """Commands on a dependency slot (TD 6): fetch its envelope, check it, process it."""
        params = context.params[index]
        if name == "condition-is-dependency":
            return
        if name == "directive-fetch":
            digest: SuitDigest | None = params.get("image-digest")
            raw = self.installed_manifest(digest) if digest is not None else None
            if raw is None:
                uri = params.get("uri")
                if not uri:
                    fail("parameter-unsupported", "dependency fetch without a uri", index)
                if uri.startswith("#"):
                    raw = self.envelope.integrated_payloads.get(uri)
                    if raw is None:
                        fail("operation-failed", f"no integrated dependency {uri!r}", index)
                else:
                    try:
                        raw = self.fetch(uri, params.get("image-size"))
                    except Exception as exc:  # noqa: BLE001
                        fail("operation-failed", f"dependency fetch failed: {exc}", index)
            context.dependencies[index] = raw
            return
        dependency = self._checked_dependency(context, index, fail)
        if name in ("condition-dependency-integrity", "condition-image-match"):
            return
        # directive-process-dependency (TD 6.2): an installed dependency has run its sequences
        # already; installing one from here is beyond this agent.
        if self.installed_manifest(dependency.computed_digest()) is None:
            prefix = self.dependencies.get(index)
            named = format_component_id(prefix) if prefix else f"index {index}"
            fail(
                "component-unsupported",
                f"dependency {named} is not installed; send its manifest first",
                index,
            )

    def _checked_dependency(self, context: _Context, index: int, fail) -> Envelope:
        """TD 6.3 suit-condition-dependency-integrity: digest and signature of the dependency."""
        raw = context.dependencies.get(index)
        if raw is None:
            fail("condition-failed", "the dependency was not fetched", index)
        try:
            dependency = parse_envelope(raw)
        except SuitError as exc:
            fail("cbor-parse", f"dependency envelope: {exc}", index)
        digest: SuitDigest | None = context.params[index].get("image-digest")
        if digest is None:
            fail("parameter-unsupported", "dependency without image-digest", index)
        if dependency.computed_digest() != digest:
            fail("condition-failed", "dependency manifest digest does not match", index)
        try:
            self.verify_dependency(dependency)
        except SuitError as exc:
            fail("unauthorised", f"dependency: {exc}", index)
        return dependency

    def _image_match(self, context: _Context, index: int, fail) -> None:
        params = context.params[index]
        digest: SuitDigest | None = params.get("image-digest")
        if digest is None:
            fail("parameter-unsupported", "condition-image-match without image-digest", index)
        image = context.images.get(index)
        if image is None:
            image = self.installed_image(tuple(self.components[index]))
        if image is None:
            fail("condition-failed", "condition-image-match: no image to check", index)
        if digest.algorithm != c.SHA256:
            fail("alg-unsupported", f"image-digest algorithm {digest.algorithm_name}", index)
        measured = {"image-digest": SuitDigest.sha256(image), "image-size": len(image)}
        if not hmac.compare_digest(hashlib.sha256(image).digest(), digest.value):
            fail("condition-failed", "image digest does not match the manifest", index, measured)
        size = params.get("image-size")
        if size is not None and size != len(image):
            fail("condition-failed", f"image size {len(image)} is not {size}", index, measured)


def _uuid_text(value: Any) -> str:
    if isinstance(value, bytes) and len(value) == 16:
        return str(uuid.UUID(bytes=value))
    return repr(value)  # a CBOR PEN vendor id (tag 112), or not an id at all


def _raw_sequences(envelope: Envelope) -> dict[str, bytes]:
    """The encoded command sequences, for SUIT_Record section-offsets (report 3)."""
    found: dict[str, bytes] = {}
    try:
        manifest = cbor2.loads(envelope.manifest_bytes)
        common = cbor2.loads(manifest[c.MANIFEST_COMMON])
        if isinstance(common.get(c.COMMON_SHARED_SEQUENCE), bytes):
            found["shared-sequence"] = common[c.COMMON_SHARED_SEQUENCE]
        for key, name in c.COMMAND_SEQUENCE_NAMES.items():
            value = envelope.severable_members.get(name, manifest.get(key))
            if isinstance(value, bytes):
                found[name] = value
    except Exception:  # noqa: BLE001 - offsets are diagnostics; the envelope already parsed
        return {}
    return found


def _command_offsets(raw: bytes) -> list[int]:
    """Byte offset of each command id inside an encoded sequence (counted from its array head,
    as apps.teep.wire.suit.report.command_at reads them)."""
    try:
        stream = io.BytesIO(raw)
        decoder = cbor2.CBORDecoder(stream)
        head = stream.read(1)[0]
        if head & 0x1F >= 24:
            stream.read(1 << ((head & 0x1F) - 24))
        offsets = []
        while stream.tell() < len(raw):
            offsets.append(stream.tell())
            decoder.decode()
            decoder.decode()
        return offsets
    except Exception:  # noqa: BLE001
        return []
