"""Personalization services: stored only encrypted, delivered encrypted for one device."""

import hashlib

import cbor2
import pytest
from django.db import connection
from django.utils import timezone

from apps.agent.suit_processor import ManifestFailure, process_envelope
from apps.audit.models import AuditEvent
from apps.components.models import ComponentVersion
from apps.devices.models import InstalledComponent
from apps.personalization import at_rest, services
from apps.personalization.models import DeviceEncryptionKey, PersonalizationData
from apps.teep.tam_keys import tam_keys
from apps.teep.wire.keys import TeepKey
from apps.teep.wire.suit import build_envelope, decrypt_with_key, parse_envelope, verify_envelope
from apps.teep.wire.suit import constants as c
from tests.components.factories import EXAMPLE_COMPONENT_ID, ExampleComponentFactory

from .conftest import PLAINTEXT
from .factories import CONFIG_COMPONENT_ID, CONFIG_MANIFEST_ID

pytestmark = pytest.mark.django_db


def store(device, component, operator, plaintext=PLAINTEXT, **kwargs):
    return services.store_personalization_data(
        device=device, component=component, plaintext=plaintext, actor=operator, **kwargs
    )


def raw_row_bytes(table: str, pk: int) -> bytes:
    """Every column of the row as the database returns it, concatenated as bytes."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} WHERE id = %s", [pk])
        row = cursor.fetchone()
    return b"|".join(
        bytes(value) if isinstance(value, (bytes, memoryview)) else str(value).encode()
        for value in row
    )


def run_on_device(envelope_bytes: bytes, key: TeepKey, **kwargs):
    """The product agent's SUIT processor with `key` as the device's key-agreement key."""
    return process_envelope(
        parse_envelope(envelope_bytes),
        fetch=lambda uri, size: pytest.fail(f"unexpected fetch of {uri}"),
        installed_image=lambda component_id: None,
        decrypt=lambda info, ciphertext: decrypt_with_key(
            info, ciphertext, key, context_other=c.CONTEXT_SUIT_PAYLOAD
        ),
        **kwargs,
    )


# --- storing ---------------------------------------------------------------------------------


def test_stored_row_holds_ciphertext_never_the_plaintext(device, data_component, operator):
    data = store(device, data_component, operator)
    raw = raw_row_bytes("personalization_personalizationdata", data.pk)
    assert PLAINTEXT not in raw
    for fragment in (b"FOO Bar", b"0123456789abfcdef", PLAINTEXT.hex().encode()):
        assert fragment not in raw
    assert bytes(data.ciphertext) != PLAINTEXT and len(data.nonce) == 12
    assert data.plaintext_sha256 == hashlib.sha256(PLAINTEXT).hexdigest()
    assert data.plaintext_size == 61
    assert data.key_id == at_rest.data_keys()[0].key_id
    assert services.decrypt_at_rest(data) == PLAINTEXT


def test_audit_row_names_digest_and_size_not_the_data(device, data_component, operator):
    data = store(device, data_component, operator)
    event = AuditEvent.objects.get(action="personalization.store")
    assert event.device_kid == device.kid and event.object_id == str(data.pk)
    assert event.detail["after"]["sha256"] == data.plaintext_sha256
    assert event.detail["after"]["size"] == 61
    for row in AuditEvent.objects.all():
        assert b"FOO Bar" not in raw_row_bytes("audit_auditevent", row.pk)


def test_row_copied_to_another_device_does_not_decrypt(
    device, other_device, data_component, operator
):
    data = store(device, data_component, operator)
    copy = PersonalizationData.objects.create(
        device=other_device,
        component=data_component,
        sequence_number=data.sequence_number,
        ciphertext=bytes(data.ciphertext),
        nonce=bytes(data.nonce),
        key_id=data.key_id,
        plaintext_sha256=data.plaintext_sha256,
        plaintext_size=data.plaintext_size,
    )
    with pytest.raises(at_rest.AtRestError, match="not authentic"):
        services.decrypt_at_rest(copy)


def test_row_moved_to_another_sequence_number_does_not_decrypt(device, data_component, operator):
    data = store(device, data_component, operator)
    PersonalizationData.objects.filter(pk=data.pk).update(sequence_number=99)
    data.refresh_from_db()
    with pytest.raises(at_rest.AtRestError):
        services.decrypt_at_rest(data)


def test_rotated_key_still_decrypts_old_rows(
    settings, tmp_path, device, data_component, operator, data_key_file
):
    from .conftest import write_key

    old = store(device, data_component, operator, b"old data")
    new_file = tmp_path / "data-key-2.b64"
    write_key(new_file)
    settings.TAM_DATA_ENCRYPTION_KEY_FILE = [str(new_file), str(data_key_file)]
    new = store(device, data_component, operator, b"new data")
    assert new.key_id != old.key_id
    assert services.decrypt_at_rest(old) == b"old data"
    assert services.decrypt_at_rest(new) == b"new data"


def test_sequence_numbers_grow_and_older_pending_data_is_superseded(
    device, other_device, data_component, operator
):
    first = store(device, data_component, operator, b"one")
    second = store(device, data_component, operator, b"two")
    elsewhere = store(other_device, data_component, operator, b"other")
    first.refresh_from_db()
    assert (first.sequence_number, second.sequence_number, elsewhere.sequence_number) == (1, 2, 1)
    assert first.state == PersonalizationData.State.SUPERSEDED
    assert second.state == elsewhere.state == PersonalizationData.State.PENDING


def test_sequence_number_starts_above_what_the_device_holds(device, data_component, operator):
    InstalledComponent.objects.create(
        device=device, component_key=data_component.component_id, sequence_number=7
    )
    assert store(device, data_component, operator).sequence_number == 8


def test_oversized_data_is_refused(device, data_component, operator):
    with pytest.raises(services.PersonalizationError, match="limited"):
        store(device, data_component, operator, b"x" * (services.PERSONALIZATION_MAX_BYTES + 1))
    assert not PersonalizationData.objects.exists()


# --- device keys -----------------------------------------------------------------------------


def test_registering_a_device_key_and_replacing_it_is_audited(device, operator):
    first, second = TeepKey.generate("p256"), TeepKey.generate("p256")
    services.register_device_encryption_key(
        device=device, public_key_bytes=first.public_pem(), actor=operator
    )
    cose_key = cbor2.dumps(second.to_cose_key(private=False), canonical=True)
    entry = services.register_device_encryption_key(
        device=device, public_key_bytes=cose_key, actor=operator
    )
    assert DeviceEncryptionKey.objects.get() == entry and entry.kid == second.kid.hex()
    assert services.device_encryption_key(device) == second.public()
    events = AuditEvent.objects.filter(action="personalization.register_device_key")
    assert [e.detail.get("before") for e in events.order_by("id")] == [
        None,
        {"kid": first.kid.hex()},
    ]


def test_ed25519_key_is_refused_for_key_agreement(device, operator):
    with pytest.raises(services.PersonalizationError, match="P-256"):
        services.register_device_encryption_key(
            device=device,
            public_key_bytes=TeepKey.generate("ed25519").public_pem(),
            actor=operator,
        )


def test_the_agent_signing_key_is_refused_as_encryption_key(operator):
    from .factories import DeviceFactory

    agent_key = TeepKey.generate("p256")
    device = DeviceFactory(agent_key=agent_key)
    with pytest.raises(services.PersonalizationError, match="signing key"):
        services.register_device_encryption_key(
            device=device, public_key_bytes=agent_key.public_pem(), actor=operator
        )


# --- delivering ------------------------------------------------------------------------------


def test_delivery_envelope_is_valid_signed_and_decrypts_only_with_the_device_key(
    device, device_key, data_component, operator, suit_cddl
):
    data = store(device, data_component, operator)
    envelope_bytes = services.build_delivery_envelope(data)

    result = suit_cddl.validate(envelope_bytes, root_type="SUIT_Envelope")
    assert result.valid, [d.message for d in result.diagnostics]
    envelope = parse_envelope(envelope_bytes)
    tam_key = tam_keys().signing_key_for(-9)
    assert verify_envelope(envelope, [tam_key.public()]) == tam_key.public()
    assert not envelope.tagged and envelope.sequence_number == data.sequence_number
    assert list(envelope.component_ids[0]) == CONFIG_COMPONENT_ID
    assert list(envelope.manifest_component_id) == CONFIG_MANIFEST_ID
    assert not envelope.manifest.common.dependencies
    assert PLAINTEXT not in envelope_bytes

    (staged,) = run_on_device(envelope_bytes, device_key)
    assert staged.image == PLAINTEXT and list(staged.component_id) == CONFIG_COMPONENT_ID

    with pytest.raises(ManifestFailure) as failure:
        run_on_device(envelope_bytes, TeepKey.generate("p256"))
    assert failure.value.reason == "operation-failed"
    assert "decryption failed" in str(failure.value)


def test_each_delivery_is_encrypted_afresh(device, device_key, data_component, operator):
    data = store(device, data_component, operator)
    first, second = services.build_delivery_envelope(data), services.build_delivery_envelope(data)
    assert first != second
    assert run_on_device(first, device_key)[0].image == run_on_device(second, device_key)[0].image


def test_a128gcm_delivery(device, device_key, data_component, operator):
    data = store(device, data_component, operator)
    envelope_bytes = services.build_delivery_envelope(data, content_alg=c.A128GCM)
    assert run_on_device(envelope_bytes, device_key)[0].image == PLAINTEXT


def test_delivery_needs_the_device_key(device, data_component, operator):
    data = store(device, data_component, operator)
    with pytest.raises(services.PersonalizationError, match="no registered encryption key"):
        services.build_delivery_envelope(data)


def released_ta(operator, sequence_number=1) -> ComponentVersion:
    component = ExampleComponentFactory()
    envelope = build_envelope(
        component_id=EXAMPLE_COMPONENT_ID,
        manifest_component_id=EXAMPLE_COMPONENT_ID[:-1] + [b"suit"],
        sequence_number=sequence_number,
        payload=b"Hello, Secure World!",
        signing_key=tam_keys().signing_key_for(-9),
    )
    return ComponentVersion.objects.create(
        component=component,
        version_label="1.0",
        sequence_number=sequence_number,
        envelope=envelope,
        envelope_sha256=hashlib.sha256(envelope).hexdigest(),
        delivery=ComponentVersion.Delivery.INTEGRATED,
        state=ComponentVersion.State.RELEASED,
        released_at=timezone.now(),
    )


def test_data_for_a_ta_names_its_manifest_as_dependency(
    device, device_key, data_component, operator, suit_cddl
):
    ta = released_ta(operator)
    data = store(device, data_component, operator, depends_on=ta.component)
    envelope_bytes = services.build_delivery_envelope(data)
    assert suit_cddl.validate(envelope_bytes, root_type="SUIT_Envelope").valid
    envelope = parse_envelope(envelope_bytes)
    assert dict(envelope.manifest.common.dependencies) == {
        1: tuple(EXAMPLE_COMPONENT_ID[:-1] + [b"suit"])
    }
    assert envelope.integrated_payloads["#dependency-manifest"] == bytes(ta.envelope)
    ta_digest = parse_envelope(bytes(ta.envelope)).digest

    # An agent holding the TA processes it: the dependency resolves to the installed manifest.
    (staged,) = run_on_device(
        envelope_bytes,
        device_key,
        installed_manifest=lambda d: bytes(ta.envelope) if d == ta_digest else None,
        verify_dependency=lambda env: verify_envelope(env, [tam_keys().signing_key_for(-9)]),
    )
    assert staged.image == PLAINTEXT


def test_dependency_without_a_released_version_cannot_be_built(
    device, device_key, data_component, operator
):
    component = ExampleComponentFactory()
    data = store(device, data_component, operator, depends_on=component)
    with pytest.raises(services.PersonalizationError, match="no released version"):
        services.build_delivery_envelope(data)


def test_pending_needs_a_device_key_and_lists_the_newest_data(device, data_component, operator):
    store(device, data_component, operator, b"one")
    newest = store(device, data_component, operator, b"two")
    assert services.pending_for_device(device) == []
    services.register_device_encryption_key(
        device=device, public_key_bytes=TeepKey.generate("p256").public_pem(), actor=operator
    )
    assert services.pending_for_device(device) == [newest]


def test_delivery_then_success_installs(device, device_key, data_component, operator):
    data = store(device, data_component, operator)
    assert services.mark_delivered([data.pk], [4242]) == 1
    assert services.mark_delivered([data.pk], [4243]) == 0  # claimed once
    data.refresh_from_db()
    assert (data.state, data.delivery_item_id) == (PersonalizationData.State.DELIVERED, 4242)
    assert services.pending_for_device(device) == []
    assert services.settle(data.pk, True) is True
    assert services.settle(data.pk, False, "late") is False  # settled once
    data.refresh_from_db()
    assert data.state == PersonalizationData.State.INSTALLED and data.settled_at
    assert AuditEvent.objects.filter(action="personalization.installed").count() == 1


def test_error_settles_as_failed_with_the_reason(device, device_key, data_component, operator):
    data = store(device, data_component, operator)
    services.mark_delivered([data.pk], [7])
    assert services.settle_delivery_items([7], False, "operation-failed: decryption failed") == 1
    data.refresh_from_db()
    assert data.state == PersonalizationData.State.FAILED
    assert data.state_reason == "operation-failed: decryption failed"


def test_unanswered_delivery_goes_back_to_pending(device, device_key, data_component, operator):
    data = store(device, data_component, operator)
    services.mark_delivered([data.pk], [8])
    assert services.requeue([data.pk], "token expired") == 1
    assert services.pending_for_device(device) == [data]
    data.refresh_from_db()
    assert data.delivery_item_id is None


def test_settling_pending_data_changes_nothing(device, data_component, operator):
    data = store(device, data_component, operator)
    assert services.settle(data.pk, True) is False
    data.refresh_from_db()
    assert data.state == PersonalizationData.State.PENDING
