"""Personalization data: storing it encrypted, delivering it encrypted for one device, settling.

Operator actions (`register_device_encryption_key`, `store_personalization_data`) run in one
transaction with their audit row (the admin's own, when called from there). The delivery
functions are called by the TAM state machine inside the transaction that holds the device's
row lock:

1. computing what is due: `pending_for_device(device)`, then `build_delivery_envelope(data)`
   for each (an untagged SUIT envelope for the Update's manifest-list);
2. recording the Update: `mark_delivered(data_ids, delivery_item_ids)`;
3. Success / Error: `settle(data_id, success=..., reason=...)` (or `settle_delivery_items`);
   an unanswered Update: `requeue(data_ids, reason=...)`.

Plaintext exists only in memory, between the at-rest decryption and the encryption to the
device; it is never logged nor written to the audit trail (its SHA-256 and size are, as the
manifest carries them in clear anyway, TEEP Appendix E Example 3).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import cbor2
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from apps.audit.services import record_operator_action, record_system_event
from apps.components.models import ComponentVersion, TrustedComponent
from apps.devices.models import Device, InstalledComponent
from apps.personalization import at_rest
from apps.personalization.models import DeviceEncryptionKey, PersonalizationData
from apps.teep.wire.errors import SuitError
from apps.teep.wire.keys import TeepKey, load_public_key
from apps.teep.wire.suit import constants as suit_constants
from apps.teep.wire.suit.personalization import Dependency, build_personalization_envelope

# Personalization data travels inside the Update (parameter content, TEEP 4.4): keep it small.
PERSONALIZATION_MAX_BYTES = 64 * 1024
# The TAM signs the envelopes it builds with ESP256 (as apps.components does).
TAM_ENVELOPE_ALG = -9
# SUIT MTI 3.2 suit-sha256-esp256-ecdh-a128ctr, the profile of TEEP Appendix E Example 3.
DEFAULT_CONTENT_ALG = suit_constants.A128CTR
_AAD_LABEL = b"tam-portal personalization data v1"


class PersonalizationError(Exception):
    """A request the personalization service refuses; the message says why."""


# --- locks -------------------------------------------------------------------------------------


def lock_personalization_data(ids: Iterable[int]):
    return (
        PersonalizationData.objects.filter(pk__in=list(ids))
        .order_by("pk")
        .select_for_update(of=("self",))
    )


def _lock_device(device: Device) -> Device:
    return Device.objects.select_for_update(of=("self",)).get(pk=device.pk)


# --- device keys -------------------------------------------------------------------------------


@transaction.atomic
def register_device_encryption_key(
    *, device: Device, public_key_bytes: bytes, actor, request=None
) -> DeviceEncryptionKey:
    """Register (or replace) the P-256 key personalization data is encrypted to (PEM/COSE_Key)."""
    key = check_encryption_key(public_key_bytes, device)
    kid = key.kid.hex()
    device = _lock_device(device)
    existing = DeviceEncryptionKey.objects.filter(device=device).first()
    before = {"kid": existing.kid} if existing else None
    cose_key = cbor2.dumps(key.to_cose_key(private=False), canonical=True)
    user = actor if getattr(actor, "pk", None) else None
    entry, _ = DeviceEncryptionKey.objects.update_or_create(
        device=device,
        defaults={
            "cose_key": cose_key,
            "kid": kid,
            "registered_at": timezone.now(),
            "registered_by": user,
        },
    )
    record_operator_action(
        actor=actor,
        action="personalization.register_device_key",
        obj=entry,
        device_kid=device.kid,
        request=request,
        before=before,
        after={"kid": kid},
    )
    return entry


def check_encryption_key(public_key_bytes: bytes, device: Device | None = None) -> TeepKey:
    """The public key, if it can be a device's key-agreement key; PersonalizationError if not."""
    try:
        key = load_public_key(public_key_bytes).public()
    except ValueError as exc:
        raise PersonalizationError(f"not a usable public key: {exc}") from None
    if key.kind != "p256":
        raise PersonalizationError(
            "the encryption key must be a P-256 key "
            "(ECDH-ES + A128KW, SUIT firmware encryption 5.2)"
        )
    if device is not None and key.kid.hex() == device.kid:
        raise PersonalizationError(
            "this is the agent's signing key; register its separate key-agreement key"
        )
    return key


def device_encryption_key(device: Device) -> TeepKey | None:
    entry = DeviceEncryptionKey.objects.filter(device=device).first()
    return TeepKey.from_cose_key(bytes(entry.cose_key)) if entry is not None else None


# --- storing -----------------------------------------------------------------------------------


def associated_data(device_kid: str, component_key: str, sequence_number: int) -> bytes:
    """AES-GCM associated data: the row's identity, so a ciphertext copied elsewhere fails."""
    return cbor2.dumps([_AAD_LABEL, device_kid, component_key, sequence_number])


@transaction.atomic
def store_personalization_data(
    *,
    device: Device,
    component: TrustedComponent,
    plaintext: bytes,
    depends_on: TrustedComponent | None = None,
    actor,
    request=None,
) -> PersonalizationData:
    """Store `plaintext` for one device, encrypted at rest, as the next sequence number.

    Earlier pending data for the same device and component is superseded (never delivered)."""
    if isinstance(plaintext, (bytearray, memoryview)):
        plaintext = bytes(plaintext)
    if not isinstance(plaintext, bytes):
        raise PersonalizationError("personalization data must be bytes")
    if len(plaintext) > PERSONALIZATION_MAX_BYTES:
        raise PersonalizationError(
            f"personalization data is limited to {PERSONALIZATION_MAX_BYTES} bytes"
        )
    if depends_on is not None and depends_on.pk == component.pk:
        raise PersonalizationError("personalization data cannot depend on its own component")
    device = _lock_device(device)  # serialises sequence numbers per device
    rows = PersonalizationData.objects.filter(device=device, component=component)
    highest = rows.aggregate(m=Max("sequence_number"))["m"] or 0
    held = (
        InstalledComponent.objects.filter(device=device, component_key=component.component_id)
        .values_list("sequence_number", flat=True)
        .first()
    )
    sequence_number = max(highest, held or 0) + 1
    sealed = at_rest.seal(
        plaintext, associated_data(device.kid, component.component_id, sequence_number)
    )
    superseded = list(
        rows.filter(state=PersonalizationData.State.PENDING).values_list("pk", flat=True)
    )
    if superseded:
        rows.filter(pk__in=superseded).update(
            state=PersonalizationData.State.SUPERSEDED,
            state_reason=f"superseded by sequence number {sequence_number}",
            settled_at=timezone.now(),
        )
    data = PersonalizationData.objects.create(
        device=device,
        component=component,
        depends_on=depends_on,
        sequence_number=sequence_number,
        ciphertext=sealed.ciphertext,
        nonce=sealed.nonce,
        key_id=sealed.key_id,
        plaintext_sha256=hashlib.sha256(plaintext).hexdigest(),
        plaintext_size=len(plaintext),
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    record_operator_action(
        actor=actor,
        action="personalization.store",
        obj=data,
        device_kid=device.kid,
        request=request,
        after={
            "component": component.name,
            "depends_on": depends_on.name if depends_on else None,
            "sequence_number": sequence_number,
            "sha256": data.plaintext_sha256,
            "size": data.plaintext_size,
            "key_id": sealed.key_id,
            "superseded": superseded,
        },
    )
    return data


def decrypt_at_rest(data: PersonalizationData) -> bytes:
    """The plaintext; at_rest.AtRestError when the row was tampered with or moved."""
    return at_rest.open_sealed(
        at_rest.Sealed(data.key_id, bytes(data.nonce), bytes(data.ciphertext)),
        associated_data(data.device.kid, data.component.component_id, data.sequence_number),
    )


# --- delivering --------------------------------------------------------------------------------


def pending_for_device(device: Device) -> list[PersonalizationData]:
    """Data waiting to be delivered to `device`: the newest per component, oldest first.

    Only data the TAM can encrypt: the device needs a registered encryption key. Put each
    envelope in manifest-list after the manifest of its `depends_on` component when both are
    sent, so the agent holds the TA before it processes the dependency (TD 6)."""
    if not DeviceEncryptionKey.objects.filter(device=device).exists():
        return []
    return list(
        PersonalizationData.objects.filter(device=device, state=PersonalizationData.State.PENDING)
        .select_related("component", "depends_on", "device")
        .order_by("created_at", "pk")
    )


def build_delivery_envelope(
    data: PersonalizationData, *, content_alg: int = DEFAULT_CONTENT_ALG
) -> bytes:
    """An untagged SUIT envelope (TEEP Appendix E Example 3) carrying the data encrypted to the
    device's key (ECDH-ES + A128KW, A128CTR by default), signed with the TAM's ESP256 key.

    Every call encrypts afresh (new ephemeral key and content key). With `depends_on` the
    envelope names that component's manifest as a dependency and integrates its envelope:
    the version the device holds, else the newest released one."""
    from apps.teep.tam_keys import tam_keys

    recipient = device_encryption_key(data.device)
    if recipient is None:
        raise PersonalizationError(f"{data.device} has no registered encryption key")
    dependency = None
    if data.depends_on_id is not None:
        version = _dependency_version(data.device, data.depends_on)
        dependency = Dependency(
            manifest_component_id=data.depends_on.manifest_component_id_elements,
            envelope=bytes(version.envelope),
        )
    signing_key = tam_keys().signing_key_for(TAM_ENVELOPE_ALG)
    try:
        return build_personalization_envelope(
            component_id=data.component.component_id_elements,
            manifest_component_id=data.component.manifest_component_id_elements,
            sequence_number=data.sequence_number,
            plaintext=decrypt_at_rest(data),
            recipient_key=recipient,
            recipient_kid=recipient.kid,
            vendor_id=data.component.suit_vendor_id.bytes,
            class_id=data.component.suit_class_id.bytes,
            signing_key=signing_key,
            alg=TAM_ENVELOPE_ALG,
            content_alg=content_alg,
            dependency=dependency,
        )
    except SuitError as exc:
        raise PersonalizationError(f"cannot build the delivery envelope: {exc}") from None


def _dependency_version(device: Device, component: TrustedComponent) -> ComponentVersion:
    held = (
        InstalledComponent.objects.filter(
            device=device, component_key=component.component_id, version__isnull=False
        )
        .select_related("version")
        .first()
    )
    if held is not None:
        return held.version
    version = (
        component.versions.filter(state=ComponentVersion.State.RELEASED)
        .order_by("-sequence_number")
        .first()
    )
    if version is None:
        raise PersonalizationError(f"{component} has no released version to depend on")
    return version


def mark_delivered(data_ids: Sequence[int], delivery_item_ids: Sequence[int | None]) -> int:
    """Pending -> delivered, each with the DeliveryItem that carried it; the number claimed."""
    if len(data_ids) != len(delivery_item_ids):
        raise ValueError("one delivery item id per personalization data id")
    claimed = 0
    for data_id, item_id in zip(data_ids, delivery_item_ids, strict=True):
        claimed += PersonalizationData.objects.filter(
            pk=data_id, state=PersonalizationData.State.PENDING
        ).update(
            state=PersonalizationData.State.DELIVERED, delivery_item_id=item_id, state_reason=""
        )
    return claimed


def settle(data_id: int, success: bool, reason: str = "") -> bool:
    """Delivered -> installed (Success) or failed (Error); False if it was not delivered."""
    state = PersonalizationData.State.INSTALLED if success else PersonalizationData.State.FAILED
    changed = PersonalizationData.objects.filter(
        pk=data_id, state=PersonalizationData.State.DELIVERED
    ).update(state=state, state_reason=(reason or "")[:300], settled_at=timezone.now())
    if changed:
        data = PersonalizationData.objects.select_related("device").get(pk=data_id)
        record_system_event(
            action=f"personalization.{state}",
            outcome="ok" if success else "failed",
            reason=(reason or "")[:300],
            obj=data,
            detail={"device_kid": data.device.kid, "sequence_number": data.sequence_number},
        )
    return bool(changed)


def settle_delivery_items(delivery_item_ids: Iterable[int], success: bool, reason: str = "") -> int:
    """settle() for the data carried by these DeliveryItems; the number settled."""
    ids = PersonalizationData.objects.filter(
        delivery_item_id__in=list(delivery_item_ids), state=PersonalizationData.State.DELIVERED
    ).values_list("pk", flat=True)
    return sum(settle(data_id, success, reason) for data_id in list(ids))


def requeue(data_ids: Iterable[int], reason: str = "") -> int:
    """Delivered -> pending again (the Update went unanswered, or a temporary error)."""
    return PersonalizationData.objects.filter(
        pk__in=list(data_ids), state=PersonalizationData.State.DELIVERED
    ).update(
        state=PersonalizationData.State.PENDING, delivery_item_id=None, state_reason=reason[:300]
    )


def requeue_delivery_items(delivery_item_ids: Iterable[int], reason: str = "") -> int:
    """requeue() for the data carried by these DeliveryItems."""
    ids = PersonalizationData.objects.filter(
        delivery_item_id__in=list(delivery_item_ids), state=PersonalizationData.State.DELIVERED
    ).values_list("pk", flat=True)
    return requeue(list(ids), reason)
