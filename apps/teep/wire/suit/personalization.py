"""SUIT envelopes that deliver personalization data encrypted for one device (no Django).

The shape follows TEEP Appendix E Example 3 ("Supplying Personalization Data for Trusted
Component Binary"):

- common: components [the data component] and, with a dependency, suit-dependencies
  {1: {dependency-prefix: the TA's manifest component id}} (TD 5.2.2); with vendor / class ids,
  a shared sequence setting them for the data component and checking them
  (condition-vendor-/class-identifier, as in Example 3);
- validate (7): image-digest / image-size of the PLAINTEXT, condition-image-match;
- dependency-resolution (15), with a dependency only: image-digest = the dependency's manifest
  digest, its size, its uri, directive-fetch (TD 5.5);
- install (20): (set-component-index 1, process-dependency) with a dependency; then
  override-parameters content (the ciphertext) + encryption-info (the SUIT_Encryption_Info:
  ES-DH with ECDH-ES + A128KW to the device's key, firmware encryption 5.2, KDF context other =
  "SUIT Payload Encryption", 5.2.4) and directive-write, which decrypts (encryption 4);
- uninstall (24): process-dependency (with a dependency) and unlink.

As in Example 3 the dependency takes component index 1 although suit-components lists only the
data component (TD 5.2.2 reads as if dependencies were entries of suit-components; Example 3
does not do that, and agents tested against the TEEP examples expect its shape).

A dependency without a uri is integrated in the envelope under "#dependency-manifest" (TD 5.2.3,
as in firmware encryption 9.4), so the envelope is complete on its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from types import EllipsisType
from typing import Any

import cbor2

from apps.teep.wire import cose
from apps.teep.wire.errors import CoseError, SuitError
from apps.teep.wire.keys import TeepKey
from apps.teep.wire.suit import constants as c
from apps.teep.wire.suit._cbor import encode, is_uint
from apps.teep.wire.suit.encryption import encrypt_for_recipient
from apps.teep.wire.suit.envelope import SuitDigest, _check_component_id, parse_envelope

# TD 5.2.3 / firmware encryption 9.4: the envelope key of an integrated dependency.
INTEGRATED_DEPENDENCY_KEY = "#dependency-manifest"
# TEEP Appendix E Example 3: the data component is index 0, its dependency index 1.
DATA_INDEX = 0
DEPENDENCY_INDEX = 1
# Content encryption the SUIT COSE profiles of MTI 3 allow with ECDH-ES + A128KW.
CONTENT_ALGORITHMS = (c.A128CTR, c.A128GCM)
DIRECTIVE_PROCESS_DEPENDENCY = c.DIRECTIVE_PROCESS_DEPENDENCY
COMMON_DEPENDENCIES = c.COMMON_DEPENDENCIES


@dataclass(frozen=True)
class Dependency:
    """The TA the data belongs to: its SUIT envelope and manifest component id (the prefix)."""

    manifest_component_id: Sequence[bytes]
    envelope: bytes
    uri: str | None = None  # None: integrated under INTEGRATED_DEPENDENCY_KEY

    @property
    def manifest_digest(self) -> SuitDigest:
        """TD 5.2.2: a dependency is named by the digest of its bstr-wrapped manifest."""
        return parse_envelope(self.envelope).computed_digest()


def build_personalization_envelope(
    *,
    component_id: Sequence[bytes],
    manifest_component_id: Sequence[bytes],
    sequence_number: int,
    plaintext: bytes,
    recipient_key: TeepKey,
    signing_key: TeepKey,
    content_alg: int = c.A128CTR,
    dependency: Dependency | None = None,
    recipient_kid: bytes | None = None,
    vendor_id: bytes | None = None,
    class_id: bytes | None = None,
    alg: int | None = None,
    kid: bytes | None | EllipsisType = ...,
    tagged: bool = False,
) -> bytes:
    """A signed SUIT envelope writing `plaintext`, encrypted for `recipient_key`, as one component.

    `recipient_key` is the device's P-256 key-agreement key (public); `recipient_kid`, when
    given, goes in the recipient's unprotected header. Signed like build_envelope: COSE_Sign1
    over the bstr-wrapped SUIT_Digest of the manifest; `kid` defaults to the signing key's
    RFC 9679 thumbprint. `vendor_id` / `class_id` (16-byte UUIDs) are checked in the shared
    sequence. Untagged by default (TEEP manifest-list).
    """
    component = _check_component_id(component_id, "component_id")
    manifest_id = _check_component_id(manifest_component_id, "manifest_component_id")
    if not is_uint(sequence_number):
        raise SuitError("sequence_number must be an unsigned integer")
    if isinstance(plaintext, (bytearray, memoryview)):
        plaintext = bytes(plaintext)
    if not isinstance(plaintext, bytes):
        raise SuitError("plaintext must be bytes")
    if content_alg not in CONTENT_ALGORITHMS:
        raise SuitError("content_alg must be A128CTR (-65534) or A128GCM (1)")
    if not isinstance(recipient_key, TeepKey) or recipient_key.kind != "p256":
        raise SuitError("recipient_key must be a P-256 TeepKey (ECDH-ES, firmware encryption 5.2)")
    if not isinstance(signing_key, TeepKey) or not signing_key.is_private:
        raise SuitError("signing_key must be a private TeepKey")

    encryption_info, ciphertext = encrypt_for_recipient(
        plaintext,
        recipient_key.public(),
        content_alg=content_alg,
        context_other=c.CONTEXT_SUIT_PAYLOAD,
        kid=recipient_kid,
    )

    common: dict[int, Any] = {c.COMMON_COMPONENTS: [list(component)]}
    identity: dict[int, bytes] = {}
    conditions: list[Any] = []
    for name, value, parameter, condition in (
        ("vendor_id", vendor_id, c.PARAMETER_VENDOR_IDENTIFIER, c.CONDITION_VENDOR_IDENTIFIER),
        ("class_id", class_id, c.PARAMETER_CLASS_IDENTIFIER, c.CONDITION_CLASS_IDENTIFIER),
    ):
        if value is None:
            continue
        if not isinstance(value, bytes) or len(value) != 16:
            raise SuitError(f"{name} must be a 16-byte UUID (manifest 8.4.8.3)")
        identity[parameter] = value
        conditions += [condition, c.REPORT_ALL]
    if identity:
        common[c.COMMON_SHARED_SEQUENCE] = encode(
            [
                c.DIRECTIVE_SET_COMPONENT_INDEX,
                DATA_INDEX,
                c.DIRECTIVE_OVERRIDE_PARAMETERS,
                identity,
                *conditions,
            ]
        )
    manifest: dict[int, Any] = {
        c.MANIFEST_VERSION: c.MANIFEST_VERSION_1,
        c.MANIFEST_SEQUENCE_NUMBER: sequence_number,
        c.MANIFEST_COMPONENT_ID: list(manifest_id),
    }
    validate = [
        c.DIRECTIVE_SET_COMPONENT_INDEX,
        DATA_INDEX,
        c.DIRECTIVE_OVERRIDE_PARAMETERS,
        {
            c.PARAMETER_IMAGE_DIGEST: SuitDigest.sha256(plaintext).to_cbor(),
            c.PARAMETER_IMAGE_SIZE: len(plaintext),
        },
        c.CONDITION_IMAGE_MATCH,
        c.REPORT_ALL,
    ]
    install: list[Any] = []
    uninstall: list[Any] = []
    integrated: dict[str, bytes] = {}
    if dependency is not None:
        prefix = _check_component_id(dependency.manifest_component_id, "dependency prefix")
        if not isinstance(dependency.envelope, bytes):
            raise SuitError("dependency envelope must be bytes")
        try:
            dependency_digest = dependency.manifest_digest
        except SuitError as exc:
            raise SuitError(f"dependency envelope: {exc}") from None
        uri = dependency.uri or INTEGRATED_DEPENDENCY_KEY
        if dependency.uri is None:
            integrated[INTEGRATED_DEPENDENCY_KEY] = dependency.envelope
        common[COMMON_DEPENDENCIES] = {DEPENDENCY_INDEX: {c.DEPENDENCY_PREFIX: list(prefix)}}
        manifest[c.COMMAND_SEQUENCE_BY_NAME["dependency-resolution"]] = encode(
            [
                c.DIRECTIVE_SET_COMPONENT_INDEX,
                DEPENDENCY_INDEX,
                c.DIRECTIVE_OVERRIDE_PARAMETERS,
                {
                    c.PARAMETER_IMAGE_DIGEST: dependency_digest.to_cbor(),
                    c.PARAMETER_IMAGE_SIZE: len(dependency.envelope),
                    c.PARAMETER_URI: uri,
                },
                c.DIRECTIVE_FETCH,
                c.REPORT_ALL,
            ]
        )
        process = [
            c.DIRECTIVE_SET_COMPONENT_INDEX,
            DEPENDENCY_INDEX,
            DIRECTIVE_PROCESS_DEPENDENCY,
            0,
        ]
        install += process
        uninstall += process
    install += [
        c.DIRECTIVE_SET_COMPONENT_INDEX,
        DATA_INDEX,
        c.DIRECTIVE_OVERRIDE_PARAMETERS,
        {c.PARAMETER_CONTENT: ciphertext, c.PARAMETER_ENCRYPTION_INFO: encryption_info},
        c.DIRECTIVE_WRITE,
        c.REPORT_ALL,
    ]
    uninstall += [c.DIRECTIVE_SET_COMPONENT_INDEX, DATA_INDEX, c.DIRECTIVE_UNLINK, c.REPORT_ALL]

    manifest[c.MANIFEST_COMMON] = encode(common)
    manifest[c.COMMAND_SEQUENCE_BY_NAME["validate"]] = encode(validate)
    manifest[c.COMMAND_SEQUENCE_BY_NAME["install"]] = encode(install)
    manifest[c.COMMAND_SEQUENCE_BY_NAME["uninstall"]] = encode(uninstall)
    return _sign_and_wrap(
        encode(manifest), integrated, signing_key=signing_key, alg=alg, kid=kid, tagged=tagged
    )


def _sign_and_wrap(
    manifest_bytes: bytes,
    members: dict[str, bytes],
    *,
    signing_key: TeepKey,
    alg: int | None,
    kid: bytes | None | EllipsisType,
    tagged: bool,
) -> bytes:
    """The envelope around a manifest, signed as build_envelope signs (SUIT manifest 8.3)."""
    digest_bytes = SuitDigest(
        c.SHA256, hashlib.sha256(cbor2.dumps(manifest_bytes)).digest()
    ).to_cbor()
    try:
        signature = cose.sign1(digest_bytes, signing_key, alg, kid=kid, tagged=True, detached=True)
    except CoseError as exc:
        raise SuitError(f"cannot sign the manifest: {exc}") from None
    envelope: dict[int | str, bytes] = {
        c.ENVELOPE_AUTHENTICATION_WRAPPER: cbor2.dumps([digest_bytes, signature]),
        c.ENVELOPE_MANIFEST: manifest_bytes,
        **members,
    }
    body = encode(envelope)
    if tagged:
        return cbor2.dumps(cbor2.CBORTag(c.TAG_ENVELOPE, None))[:-1] + body
    return body
