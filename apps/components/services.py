"""Catalogue operations: every state change of components, versions and TC signers.

Each function takes its actor keyword-only, runs in one transaction and writes its audit row
inside it (apps.audit.services.record_operator_action), so an action and its audit entry
commit or roll back together. Uploads store the file first (slow I/O outside the
transaction) and delete it again when the transaction does not commit: a failure half-way
leaves neither a row nor a file.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from dataclasses import dataclass
from types import EllipsisType

import cbor2
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.urls import reverse
from django.utils import timezone

from apps.audit.services import record_operator_action
from apps.components import identifiers
from apps.components.models import ComponentVersion, SignerKey, TCSigner, TrustedComponent
from apps.teep.wire import suit
from apps.teep.wire.errors import CoseError, SuitError
from apps.teep.wire.keys import TeepKey, load_public_key

# Integrated payloads travel inside every Update that carries the envelope (TEEP 4.4): keep
# them small; larger binaries are delivered by URI.
INTEGRATED_PAYLOAD_MAX_BYTES = 256 * 1024
ENVELOPE_MAX_BYTES = 1 << 20
DEFAULT_PUBLIC_BASE_URL = "http://127.0.0.1:8000"
# The TAM signs the envelopes it builds with ESP256 (TEEP 8.1's first mandatory suite).
TAM_ENVELOPE_ALG = -9
# TEEP Appendix E Example 2: the integrated payload's envelope key, named by the uri parameter.
INTEGRATED_PAYLOAD_KEY = "#tc"


class CatalogueError(Exception):
    """An operator request the catalogue refuses; `field` names the form field concerned."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


# --- locks ---------------------------------------------------------------------------------


def lock_component(pk: int) -> TrustedComponent:
    """The component row, locked: releases and uploads of one component are serialised."""
    return TrustedComponent.objects.select_for_update(of=("self",)).get(pk=pk)


def lock_version(pk: int) -> ComponentVersion:
    return ComponentVersion.objects.select_for_update(of=("self",)).get(pk=pk)


# --- components and signers ----------------------------------------------------------------


@transaction.atomic
def create_component(
    *,
    name: str,
    component_id: list[bytes],
    vendor: str = "",
    description: str = "",
    manifest_component_id: list[bytes] | None = None,
    signers=(),
    suit_vendor_id: uuid.UUID | None = None,
    suit_class_id: uuid.UUID | None = None,
    actor,
    request=None,
) -> TrustedComponent:
    """A new Trusted Component. Without SUIT vendor / class ids it gets the defaults of SUIT
    manifest 8.4.8.3 (`_suit_ids`), stored from now on."""
    try:
        encoded = identifiers.encode(component_id)
        manifest_id = manifest_component_id or identifiers.default_manifest_component_id(
            component_id
        )
        encoded_manifest_id = identifiers.encode(manifest_id)
    except identifiers.ComponentIdError as exc:
        raise CatalogueError(str(exc), field="component_id") from None
    if TrustedComponent.objects.filter(component_id=encoded).exists():
        raise CatalogueError(
            "a Trusted Component with this component id exists", field="component_id"
        )
    vendor_id, class_id = _suit_ids(name, suit_vendor_id, suit_class_id)
    component = TrustedComponent.objects.create(
        name=name,
        vendor=vendor,
        description=description,
        component_id=encoded,
        manifest_component_id=encoded_manifest_id,
        suit_vendor_id=vendor_id,
        suit_class_id=class_id,
        created_by=_user(actor),
    )
    component.signers.set(signers)
    record_operator_action(
        actor=actor,
        action="component.create",
        obj=component,
        after=_component_state(component),
        request=request,
    )
    return component


@transaction.atomic
def update_component(
    component: TrustedComponent,
    *,
    name: str,
    vendor: str,
    description: str,
    signers,
    suit_vendor_id: uuid.UUID | None | EllipsisType = ...,
    suit_class_id: uuid.UUID | None | EllipsisType = ...,
    actor,
    request=None,
) -> TrustedComponent:
    """Name, vendor, description, allowed signers and SUIT vendor / class ids (... keeps them,
    None resets them to the defaults); the component ids never change. Versions already built
    keep the ids they were built with."""
    component = lock_component(component.pk)
    before = _component_state(component)
    component.name, component.vendor, component.description = name, vendor, description
    if suit_vendor_id is not ...:
        component.suit_vendor_id = suit_vendor_id
    if suit_class_id is not ...:
        component.suit_class_id = suit_class_id
    component.suit_vendor_id, component.suit_class_id = _suit_ids(
        name, component.suit_vendor_id, component.suit_class_id
    )
    component.save(
        update_fields=["name", "vendor", "description", "suit_vendor_id", "suit_class_id"]
    )
    component.signers.set(signers)
    after = _component_state(component)
    if after != before:
        record_operator_action(
            actor=actor,
            action="component.update",
            obj=component,
            before=before,
            after=after,
            request=request,
        )
    return component


@transaction.atomic
def register_signer(
    *, name: str, public_key_bytes: bytes, components=(), description: str = "", actor, request=None
) -> TCSigner:
    """A new TC Signer with its first public key (PEM, COSE_Key, or COSE_Key as hex)."""
    key = _load_signer_key(public_key_bytes)
    if TCSigner.objects.filter(name=name).exists():
        raise CatalogueError("a TC signer with this name exists", field="name")
    signer = TCSigner.objects.create(name=name, description=description)
    signer_key = _store_signer_key(signer, key)
    signer.components.set(components)
    record_operator_action(
        actor=actor,
        action="signer.register",
        obj=signer,
        after={**_signer_state(signer), "kid": signer_key.kid},
        request=request,
    )
    return signer


@transaction.atomic
def add_signer_key(signer: TCSigner, *, public_key_bytes: bytes, actor, request=None) -> SignerKey:
    """Another key for a signer (rotation); older keys stay valid until deleted."""
    key = _load_signer_key(public_key_bytes)
    signer_key = _store_signer_key(signer, key)
    record_operator_action(
        actor=actor,
        action="signer.key-add",
        obj=signer,
        after={"kid": signer_key.kid},
        request=request,
    )
    return signer_key


@transaction.atomic
def update_signer(
    signer: TCSigner, *, name: str, description: str, components, actor, request=None
) -> TCSigner:
    before = _signer_state(signer)
    signer.name, signer.description = name, description
    signer.save(update_fields=["name", "description"])
    signer.components.set(components)
    after = _signer_state(signer)
    if after != before:
        record_operator_action(
            actor=actor,
            action="signer.update",
            obj=signer,
            before=before,
            after=after,
            request=request,
        )
    return signer


def _load_signer_key(public_key_bytes: bytes) -> TeepKey:
    try:
        return load_public_key(public_key_bytes)
    except CoseError as exc:
        raise CatalogueError(f"unusable public key: {exc}", field="public_key") from None


def _store_signer_key(signer: TCSigner, key: TeepKey) -> SignerKey:
    kid = key.kid.hex()
    existing = SignerKey.objects.filter(kid=kid).select_related("signer").first()
    if existing is not None:
        raise CatalogueError(
            f"this key (kid {kid[:16]}...) is already registered for {existing.signer}",
            "public_key",
        )
    return SignerKey.objects.create(
        signer=signer,
        kid=kid,
        cose_key=cbor2.dumps(key.to_cose_key(), canonical=True),
        public_pem=key.public_pem().decode("ascii"),
    )


# --- versions ------------------------------------------------------------------------------


def upload_binary(
    *,
    component: TrustedComponent,
    binary_file,
    version_label: str,
    sequence_number: int,
    delivery: str = ComponentVersion.Delivery.URI,
    actor,
    release: bool = False,
    request=None,
) -> ComponentVersion:
    """Store a TA binary and the SUIT envelope the TAM builds and signs for it.

    The manifest names the binary's SHA-256 and size; with delivery "uri" it tells the agent
    to fetch the payload from this TAM's payload endpoint, with "integrated" the envelope
    carries the payload itself (TEEP Appendix E, Examples 1 and 2).
    """
    if delivery not in ComponentVersion.Delivery.values:
        raise CatalogueError(f"unknown delivery {delivery!r}", field="delivery")
    _check_sequence_number_shape(sequence_number)
    filename = _safe_filename(getattr(binary_file, "name", "") or "payload.bin")
    max_size = getattr(settings, "TA_UPLOAD_MAX_BYTES", 64 << 20)
    # build_envelope hashes the payload itself; the upload limit bounds what we hold.
    payload = _read_bounded(binary_file, max_size)
    size = len(payload)
    digest = hashlib.sha256(payload).hexdigest()
    if size == 0:
        raise CatalogueError("the binary is empty", field="binary")
    if delivery == ComponentVersion.Delivery.INTEGRATED and size > INTEGRATED_PAYLOAD_MAX_BYTES:
        raise CatalogueError(
            f"an integrated payload may be at most {INTEGRATED_PAYLOAD_MAX_BYTES} bytes; "
            "deliver it by URI",
            field="delivery",
        )
    # Fail early (before storing anything) on what we can check without the lock.
    _check_not_rollback(component, sequence_number, field="sequence_number")

    if delivery == ComponentVersion.Delivery.INTEGRATED:
        uri, payload_uri = None, INTEGRATED_PAYLOAD_KEY
    else:
        uri = payload_uri = _public_base_url(request) + reverse(
            "components:payload", args=[digest, filename]
        )
    envelope = _build_tam_envelope(
        component=component, sequence_number=sequence_number, payload=payload, uri=uri
    )
    stored_name = default_storage.save(
        f"components/{component.pk}/{digest}/{filename}", ContentFile(payload, name=filename)
    )
    try:
        return _record_version(
            component=component,
            version_label=version_label,
            sequence_number=sequence_number,
            envelope=envelope,
            delivery=delivery,
            signer=None,
            signer_kid=_tam_signing_key().kid.hex(),
            binary_name=stored_name,
            binary_filename=filename,
            binary_size=size,
            binary_sha256=digest,
            payload_uri=payload_uri,
            release=release,
            actor=actor,
            request=request,
            action="component_version.upload-binary",
        )
    except BaseException:
        default_storage.delete(stored_name)
        raise


def upload_signed_envelope(
    *,
    component: TrustedComponent,
    envelope_bytes: bytes,
    version_label: str,
    signer: TCSigner | None = None,
    actor,
    release: bool = False,
    request=None,
) -> ComponentVersion:
    """Accept a SUIT envelope signed by a TC Signer after verifying it.

    The signature must verify with a registered key of `signer` (or, without one, of any
    signer allowed for the component); the manifest must name exactly this component; the
    sequence number is the manifest's.
    """
    envelope_bytes = bytes(envelope_bytes)
    if len(envelope_bytes) > ENVELOPE_MAX_BYTES:
        raise CatalogueError(
            f"the envelope is larger than {ENVELOPE_MAX_BYTES} bytes", field="envelope"
        )
    try:
        envelope = suit.parse_envelope(envelope_bytes)
    except SuitError as exc:
        raise CatalogueError(f"not a valid SUIT envelope: {exc}", field="envelope") from None
    if envelope.tagged:
        # TEEP manifest-list carries untagged envelopes; the tag is outside the signature.
        envelope_bytes = suit.envelope_to_bytes(envelope, tagged=False)

    allowed = component.signers.all() if signer is None else TCSigner.objects.filter(pk=signer.pk)
    if signer is not None and not component.signers.filter(pk=signer.pk).exists():
        raise CatalogueError(f"{signer} is not allowed to sign {component}", field="signer")
    keys_by_kid = {
        key.kid: key
        for key in SignerKey.objects.filter(signer__in=allowed).select_related("signer")
    }
    if not keys_by_kid:
        raise CatalogueError(
            f"no registered TC signer key may sign {component}: "
            "register the signer and allow it for this component",
            field="signer",
        )
    teep_keys = {
        kid: TeepKey.from_cose_key(bytes(key.cose_key)) for kid, key in keys_by_kid.items()
    }
    try:
        used_key = suit.verify_envelope(envelope, list(teep_keys.values()))
    except SuitError as exc:
        raise CatalogueError(f"signature check failed: {exc}", field="envelope") from None
    signer_key = keys_by_kid[used_key.kid.hex()]

    info = _manifest_info(envelope)
    try:
        suit.check_component_allowed(envelope, [component.component_id_elements])
    except SuitError as exc:
        raise CatalogueError(
            f"{exc}: the manifest must install {component} {component.component_id_text}",
            field="envelope",
        ) from None
    if (
        info.manifest_component_id is not None
        and info.manifest_component_id != component.manifest_component_id_elements
    ):
        raise CatalogueError(
            f"the manifest component id {identifiers.readable(info.manifest_component_id)} "
            f"differs from {component}'s {component.manifest_component_id_text}; "
            "devices could not report it as unneeded",
            field="envelope",
        )
    _check_not_rollback(component, info.sequence_number, field="envelope")
    return _record_version(
        component=component,
        version_label=version_label,
        sequence_number=info.sequence_number,
        envelope=envelope_bytes,
        delivery=ComponentVersion.Delivery.INTEGRATED
        if info.integrated
        else ComponentVersion.Delivery.URI,
        signer=signer_key.signer,
        signer_kid=signer_key.kid,
        binary_name="",
        binary_filename="",
        binary_size=info.image_size,
        binary_sha256=info.image_digest.hex() if info.image_digest else "",
        payload_uri=info.uri or "",
        release=release,
        actor=actor,
        request=request,
        action="component_version.upload-envelope",
    )


@transaction.atomic(durable=True)
def release_version(
    version: ComponentVersion, *, actor, reason: str = "", request=None
) -> ComponentVersion:
    """draft -> released, only if newer than every version of the component ever released."""
    lock_component(version.component_id)
    version = lock_version(version.pk)
    if version.state != ComponentVersion.State.DRAFT:
        raise CatalogueError(
            f"{version} is {version.get_state_display().lower()}; only a draft can be released"
        )
    _check_not_rollback(version.component, version.sequence_number, field=None)
    before = _version_state(version)
    version.state = ComponentVersion.State.RELEASED
    version.released_at = timezone.now()
    version.state_changed_reason = reason
    version.updated_by = _user(actor)
    version.save(
        update_fields=["state", "released_at", "state_changed_reason", "updated_by", "updated_at"]
    )
    record_operator_action(
        actor=actor,
        action="component_version.release",
        obj=version,
        before=before,
        after=_version_state(version),
        reason=reason,
        request=request,
    )
    return version


@transaction.atomic(durable=True)
def withdraw_version(
    version: ComponentVersion, *, actor, reason: str = "", request=None
) -> ComponentVersion:
    """draft or released -> withdrawn: no longer offered, its payload no longer served.

    Its sequence number stays used: a later release must still be newer.
    """
    version = lock_version(version.pk)
    if version.state not in (ComponentVersion.State.DRAFT, ComponentVersion.State.RELEASED):
        raise CatalogueError(
            f"{version} is {version.get_state_display().lower()} and cannot be withdrawn"
        )
    before = _version_state(version)
    version.state = ComponentVersion.State.WITHDRAWN
    version.state_changed_reason = reason
    version.updated_by = _user(actor)
    version.save(update_fields=["state", "state_changed_reason", "updated_by", "updated_at"])
    record_operator_action(
        actor=actor,
        action="component_version.withdraw",
        obj=version,
        before=before,
        after=_version_state(version),
        reason=reason,
        request=request,
    )
    return version


@transaction.atomic(durable=True)
def _record_version(
    *,
    component: TrustedComponent,
    version_label: str,
    sequence_number: int,
    envelope: bytes,
    delivery: str,
    signer: TCSigner | None,
    signer_kid: str,
    binary_name: str,
    binary_filename: str,
    binary_size: int | None,
    binary_sha256: str,
    payload_uri: str,
    release: bool,
    actor,
    request,
    action: str,
) -> ComponentVersion:
    component = lock_component(component.pk)
    # Checked again under the lock: another upload may have committed meanwhile.
    _check_not_rollback(component, sequence_number, field="sequence_number")
    if ComponentVersion.objects.filter(
        component=component, sequence_number=sequence_number
    ).exists():
        raise CatalogueError(
            f"{component} already has a version with sequence number {sequence_number}",
            field="sequence_number",
        )
    version_label = (version_label or "").strip() or str(sequence_number)
    now = timezone.now()
    version = ComponentVersion(
        component=component,
        version_label=version_label,
        sequence_number=sequence_number,
        binary=binary_name,
        binary_filename=binary_filename,
        binary_size=binary_size,
        binary_sha256=binary_sha256,
        payload_uri=payload_uri,
        envelope=envelope,
        envelope_sha256=hashlib.sha256(envelope).hexdigest(),
        delivery=delivery,
        signer=signer,
        signer_kid=signer_kid,
        state=ComponentVersion.State.RELEASED if release else ComponentVersion.State.DRAFT,
        released_at=now if release else None,
        created_by=_user(actor),
        updated_by=_user(actor),
    )
    try:
        with transaction.atomic():
            version.save(force_insert=True)
    except IntegrityError:
        raise CatalogueError(
            f"{component} already has a version with sequence number {sequence_number}",
            field="sequence_number",
        ) from None
    record_operator_action(
        actor=actor, action=action, obj=version, after=_version_state(version), request=request
    )
    return version


# --- SUIT, through the wire package --------------------------------------------------------


@dataclass(frozen=True)
class ManifestInfo:
    sequence_number: int
    component_id: list[bytes]
    manifest_component_id: list[bytes] | None
    image_digest: bytes | None
    image_size: int | None
    uri: str | None
    integrated: bool


def _suit_ids(
    name: str, vendor_id: uuid.UUID | None, class_id: uuid.UUID | None
) -> tuple[uuid.UUID, uuid.UUID]:
    """SUIT manifest 8.4.8.3, RECOMMENDED construction for what is not given: vendor id =
    UUID5(DNS, TAM_VENDOR_DOMAIN), class id = UUID5(vendor id, the component's name)."""
    if vendor_id is None:
        vendor_id = identifiers.default_vendor_id(settings.TAM_VENDOR_DOMAIN)
    if class_id is None:
        class_id = identifiers.default_class_id(vendor_id, name)
    return vendor_id, class_id


def _tam_signing_key() -> TeepKey:
    from apps.teep.tam_keys import tam_keys

    key = tam_keys().signing_key_for(TAM_ENVELOPE_ALG)
    if key is None:  # tam_keys() refuses to load without one; kept for clarity
        raise CatalogueError("the TAM has no ESP256 signing key")
    return key


def _build_tam_envelope(
    *, component, sequence_number: int, payload: bytes, uri: str | None
) -> bytes:
    """TEEP Appendix E Example 1 (uri) or 2 (uri None: payload integrated under "#tc"), with
    the component's SUIT vendor and class ids (RFC 4122 bytes) checked in the shared sequence."""
    try:
        return suit.build_envelope(
            component_id=component.component_id_elements,
            manifest_component_id=component.manifest_component_id_elements,
            sequence_number=sequence_number,
            payload=payload,
            payload_uri=uri,
            integrated_key=INTEGRATED_PAYLOAD_KEY,
            # Manifest 8.4.8.3-4 / TEEP Appendix E: condition-vendor-/class-identifier.
            vendor_id=component.suit_vendor_id.bytes,
            class_id=component.suit_class_id.bytes,
            signing_key=_tam_signing_key(),
            alg=TAM_ENVELOPE_ALG,
        )
    except SuitError as exc:
        raise CatalogueError(f"cannot build the SUIT envelope: {exc}") from None


def _manifest_info(envelope) -> ManifestInfo:
    """What the catalogue records from a manifest: the parameters its sequences set."""
    manifest = envelope.manifest
    if len(manifest.common.components) != 1:
        raise CatalogueError(
            f"the manifest names {len(manifest.common.components)} components; "
            "a Trusted Component version installs exactly one",
            field="envelope",
        )
    parameters: dict = {}
    sequences = [manifest.common.shared_sequence, *manifest.command_sequences.values()]
    for sequence in sequences:
        for command in sequence:
            if command.name in ("directive-override-parameters", "directive-set-parameters"):
                for name, value in command.argument.items():
                    parameters.setdefault(name, value)
    digest = parameters.get("image-digest")
    image_digest = (
        digest.value if isinstance(digest, suit.SuitDigest) and digest.algorithm == -16 else None
    )
    size = parameters.get("image-size")
    uri = parameters.get("uri")
    uri = uri if isinstance(uri, str) else None
    return ManifestInfo(
        sequence_number=manifest.sequence_number,
        component_id=list(manifest.common.components[0]),
        manifest_component_id=(
            list(manifest.manifest_component_id)
            if manifest.manifest_component_id is not None
            else None
        ),
        image_digest=image_digest,
        image_size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        uri=uri,
        integrated=bool(uri and uri in envelope.integrated_payloads),
    )


def envelope_json(version: ComponentVersion):
    """The stored envelope decoded for people (admin page, suit_inspect)."""
    return suit.envelope_to_json(suit.parse_envelope(bytes(version.envelope)))


# --- helpers -------------------------------------------------------------------------------


def _check_sequence_number_shape(sequence_number) -> None:
    if not isinstance(sequence_number, int) or isinstance(sequence_number, bool):
        raise CatalogueError("the sequence number is a whole number", field="sequence_number")
    if not 0 <= sequence_number < 1 << 63:
        raise CatalogueError(
            "the sequence number must be between 0 and 2^63-1", field="sequence_number"
        )


def _check_not_rollback(
    component: TrustedComponent, sequence_number: int, field: str | None
) -> None:
    """DESIGN.md: sequence numbers only grow. Every version ever released counts, including
    those later withdrawn or compromised: a device may still hold them."""
    newest = ComponentVersion.objects.filter(
        component=component, released_at__isnull=False
    ).aggregate(newest=Max("sequence_number"))["newest"]
    if newest is not None and sequence_number <= newest:
        raise CatalogueError(
            f"sequence number {sequence_number} would roll {component} back: "
            f"sequence number {newest} has already been released; use a number above {newest}",
            field=field,
        )


def _public_base_url(request) -> str:
    configured = getattr(settings, "TAM_PUBLIC_BASE_URL", "")
    if configured:
        return configured.rstrip("/")
    if request is not None:
        return request.build_absolute_uri("/").rstrip("/")
    return DEFAULT_PUBLIC_BASE_URL


def _safe_filename(name: str) -> str:
    name = os.path.basename(name.replace("\\", "/"))
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")[:100]
    return name or "payload.bin"


def _read_bounded(binary_file, max_size: int) -> bytes:
    if hasattr(binary_file, "seek"):
        binary_file.seek(0)
    data = binary_file.read(max_size + 1)
    if isinstance(data, str):
        data = data.encode()
    if len(data) > max_size:
        raise CatalogueError(
            f"the binary is larger than the limit of {max_size} bytes", field="binary"
        )
    return bytes(data)


def _user(actor):
    return actor if getattr(actor, "pk", None) else None


def _component_state(component: TrustedComponent) -> dict:
    return {
        "name": component.name,
        "vendor": component.vendor,
        "description": component.description,
        "component_id": component.component_id_text,
        "manifest_component_id": component.manifest_component_id_text,
        "suit_vendor_id": str(component.suit_vendor_id),
        "suit_class_id": str(component.suit_class_id),
        "signers": sorted(component.signers.values_list("name", flat=True)),
    }


def _signer_state(signer: TCSigner) -> dict:
    return {
        "name": signer.name,
        "description": signer.description,
        "components": sorted(signer.components.values_list("name", flat=True)),
        "kids": sorted(signer.keys.values_list("kid", flat=True)),
    }


def _version_state(version: ComponentVersion) -> dict:
    return {
        "version_label": version.version_label,
        "sequence_number": version.sequence_number,
        "state": version.state,
        "delivery": version.delivery,
        "binary_sha256": version.binary_sha256,
        "binary_size": version.binary_size,
        "envelope_sha256": version.envelope_sha256,
        "signed_by": version.signed_by,
        "signer_kid": version.signer_kid,
    }


# --- Envelopes for Updates (the TAM's hot path) ---------------------------------------------------

# A version's envelope never changes once stored (a new upload is a new version), so each
# worker keeps the ones it sends, up to this many bytes, with their manifest digests.
ENVELOPE_CACHE_BYTES = 64 << 20
_envelopes: dict[int, tuple[bytes, str]] = {}
_envelope_bytes = 0


def envelope_and_manifest_digest(version_pk: int) -> tuple[bytes, str]:
    """The version's SUIT envelope and the SHA-256 of its manifest (hex, as SUIT reports name
    it): one query the first time a worker sends it, none after."""
    global _envelope_bytes
    cached = _envelopes.get(version_pk)
    if cached is not None:
        return cached
    envelope = bytes(ComponentVersion.objects.filter(pk=version_pk).values_list("envelope", flat=True).get())
    entry = (envelope, suit.parse_envelope(envelope).digest.value.hex())
    if _envelope_bytes + len(envelope) > ENVELOPE_CACHE_BYTES:
        forget_cached_envelopes()
    _envelopes[version_pk] = entry
    _envelope_bytes += len(envelope)
    return entry


def forget_cached_envelopes() -> None:
    global _envelope_bytes
    _envelopes.clear()
    _envelope_bytes = 0
