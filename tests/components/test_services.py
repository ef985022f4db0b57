"""Catalogue services: uploads, signature checks, sequence numbers, audit, clean failure."""

import hashlib

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from apps.audit.models import AuditEvent
from apps.components import identifiers, services
from apps.components.models import ComponentVersion, SignerKey
from apps.components.services import CatalogueError
from apps.teep.tam_keys import tam_keys
from apps.teep.wire.keys import TeepKey
from apps.teep.wire.suit.envelope import parse_envelope, verify_envelope
from tests.components.conftest import EXAMPLE_PAYLOAD, stored_files
from tests.components.factories import EXAMPLE_COMPONENT_ID, TrustedComponentFactory

pytestmark = pytest.mark.django_db

EXAMPLE_PAYLOAD_SHA256 = "8cf71ac86af31be184ec7a05a411a8c3a14fd9b77a30d046397481469468ece8"
SIGNER_KID = "ca9e35f23b2b525fb4fc83f512b0dcac4ac29e457e873a5d6a7313f71690b33c"


def upload(
    component, operator, sequence_number, *, data=EXAMPLE_PAYLOAD, release=False, delivery="uri"
):
    return services.upload_binary(
        component=component,
        binary_file=ContentFile(data, name="8d82573a-926d-4754-9353-32dc29997f74.ta"),
        version_label=f"v{sequence_number}",
        sequence_number=sequence_number,
        delivery=delivery,
        release=release,
        actor=operator,
    )


def parameters(envelope, sequence_name=None):
    sequence = (
        envelope.manifest.common.shared_sequence
        if sequence_name is None
        else envelope.manifest.command_sequences[sequence_name]
    )
    merged = {}
    for command in sequence:
        if command.name == "directive-override-parameters":
            merged.update(command.argument)
    return merged


# --- components and signers -------------------------------------------------------------------


def test_component_gets_the_appendix_e_manifest_component_id_by_default(operator):
    component = services.create_component(
        name="SecureFS TA", component_id=EXAMPLE_COMPONENT_ID, actor=operator
    )
    assert component.component_id_elements == EXAMPLE_COMPONENT_ID
    assert component.manifest_component_id_elements == EXAMPLE_COMPONENT_ID[:-1] + [b"suit"]
    assert (
        component.component_id_text
        == "['TEEP-Device', 'SecureFS', h'8d82573a926d4754935332dc29997f74', 'ta']"
    )
    event = AuditEvent.objects.get(action="component.create")
    assert event.actor == operator and event.object_id == str(component.pk)


def test_component_id_is_unique(operator, example_component):
    with pytest.raises(CatalogueError, match="component id exists"):
        services.create_component(name="again", component_id=EXAMPLE_COMPONENT_ID, actor=operator)


def test_readable_component_id_round_trips():
    text = "['TEEP-Device', 'SecureFS', h'8d82573a926d4754935332dc29997f74', 'ta']"
    assert identifiers.parse(text) == EXAMPLE_COMPONENT_ID
    assert identifiers.readable(identifiers.parse(text)) == text
    assert identifiers.parse(identifiers.encode(EXAMPLE_COMPONENT_ID)) == EXAMPLE_COMPONENT_ID
    for bad in ("", "['a',", "[h'abc']", "['a' 'b']", "[]"):
        with pytest.raises(identifiers.ComponentIdError):
            identifiers.parse(bad)


@pytest.mark.parametrize(
    "key_file",
    ["keys/suit-example-signer.public.pem", "keys/suit-example-signer.public.cose_key.hex"],
)
def test_register_signer_stores_the_rfc9679_kid(
    operator, example_component, read_vector, vectors_dir, key_file
):
    key_bytes = (vectors_dir / key_file).read_bytes()
    signer = services.register_signer(
        name="Vendor", public_key_bytes=key_bytes, components=[example_component], actor=operator
    )
    key = signer.keys.get()
    assert key.kid == SIGNER_KID
    assert TeepKey.from_cose_key(bytes(key.cose_key)).kid.hex() == SIGNER_KID
    assert "BEGIN PUBLIC KEY" in key.public_pem
    assert list(signer.components.all()) == [example_component]
    assert AuditEvent.objects.filter(action="signer.register", object_id=str(signer.pk)).exists()


def test_a_key_registers_once(operator, example_signer, read_vector):
    with pytest.raises(CatalogueError, match="already registered"):
        services.register_signer(
            name="Copycat",
            public_key_bytes=read_vector("keys/suit-example-signer.public.pem"),
            actor=operator,
        )
    with pytest.raises(CatalogueError, match="unusable public key"):
        services.register_signer(name="Junk", public_key_bytes=b"not a key", actor=operator)
    assert SignerKey.objects.count() == 1


# --- a TA binary: the TAM builds and signs --------------------------------------------------


def test_uploaded_binary_gets_an_envelope_the_tam_key_verifies(
    operator, example_component, media_root
):
    version = upload(example_component, operator, 4)

    assert (
        version.binary_sha256
        == EXAMPLE_PAYLOAD_SHA256
        == hashlib.sha256(EXAMPLE_PAYLOAD).hexdigest()
    )
    assert version.binary_size == 20
    assert version.state == ComponentVersion.State.DRAFT and version.signer is None
    with default_storage.open(version.binary.name) as handle:
        assert handle.read() == EXAMPLE_PAYLOAD

    envelope = parse_envelope(bytes(version.envelope))
    tam_key = tam_keys().signing_key_for(-9)
    assert verify_envelope(envelope, [tam_key.public()]) == tam_key.public()
    assert not envelope.tagged  # TEEP manifest-list carries untagged envelopes
    assert version.signer_kid == tam_key.kid.hex()
    assert envelope.sequence_number == 4
    assert list(envelope.component_ids[0]) == EXAMPLE_COMPONENT_ID
    assert list(envelope.manifest_component_id) == EXAMPLE_COMPONENT_ID[:-1] + [b"suit"]
    shared = parameters(envelope)
    assert shared["image-digest"].value.hex() == EXAMPLE_PAYLOAD_SHA256
    assert shared["image-size"] == 20
    uri = parameters(envelope, "install")["uri"]
    assert uri == version.payload_uri
    assert (
        uri
        == f"https://tam.example/payloads/{EXAMPLE_PAYLOAD_SHA256}/8d82573a-926d-4754-9353-32dc29997f74.ta"
    )
    assert version.envelope_sha256 == hashlib.sha256(bytes(version.envelope)).hexdigest()

    event = AuditEvent.objects.get(action="component_version.upload-binary")
    assert event.object_id == str(version.pk)
    assert event.detail["after"]["binary_sha256"] == EXAMPLE_PAYLOAD_SHA256


def test_integrated_delivery_puts_the_payload_in_the_envelope(operator, example_component):
    version = upload(example_component, operator, 1, delivery="integrated")
    envelope = parse_envelope(bytes(version.envelope))
    assert parameters(envelope, "install")["uri"] == "#tc"
    assert envelope.integrated_payloads["#tc"] == EXAMPLE_PAYLOAD
    assert version.delivery == ComponentVersion.Delivery.INTEGRATED


def test_empty_binary_is_refused(operator, example_component, media_root):
    with pytest.raises(CatalogueError, match="empty"):
        upload(example_component, operator, 1, data=b"")
    assert not ComponentVersion.objects.exists() and stored_files(media_root) == []


# --- a signed envelope: the TAM verifies ------------------------------------------------------


def test_signed_envelope_verifying_with_the_signers_key_is_accepted(
    operator, example_signer, read_vector
):
    component = example_signer.components.get()
    version = services.upload_signed_envelope(
        component=component,
        envelope_bytes=read_vector("teep/suit_uri.hex"),
        version_label="1.0",
        actor=operator,
    )
    assert version.sequence_number == 3  # from the manifest
    assert version.signer == example_signer and version.signer_kid == SIGNER_KID
    assert version.binary_sha256 == EXAMPLE_PAYLOAD_SHA256 and version.binary_size == 20
    assert version.payload_uri == "https://example.org/8d82573a-926d-4754-9353-32dc29997f74.ta"
    assert version.delivery == ComponentVersion.Delivery.URI
    assert not version.binary
    assert bytes(version.envelope) == read_vector("teep/suit_uri.hex")
    assert AuditEvent.objects.filter(
        action="component_version.upload-envelope", object_id=str(version.pk)
    ).exists()


def test_signed_integrated_envelope_is_recorded_as_integrated(
    operator, example_signer, read_vector
):
    version = services.upload_signed_envelope(
        component=example_signer.components.get(),
        envelope_bytes=read_vector("teep/suit_integrated.hex"),
        version_label="1.0",
        signer=example_signer,
        actor=operator,
    )
    assert version.delivery == ComponentVersion.Delivery.INTEGRATED


def test_envelope_signed_by_another_key_is_refused(operator, example_component, read_vector):
    services.register_signer(
        name="Other",
        public_key_bytes=read_vector("keys/receiver-kek-kid-2.public.pem"),
        components=[example_component],
        actor=operator,
    )
    with pytest.raises(CatalogueError, match="signature does not verify") as caught:
        services.upload_signed_envelope(
            component=example_component,
            envelope_bytes=read_vector("teep/suit_uri.hex"),
            version_label="1.0",
            actor=operator,
        )
    assert caught.value.field == "envelope"
    assert not ComponentVersion.objects.exists()


def test_envelope_for_another_component_is_refused(operator, example_signer, read_vector):
    other = TrustedComponentFactory()
    other.signers.add(example_signer)
    with pytest.raises(CatalogueError, match="not allowed for this signer"):
        services.upload_signed_envelope(
            component=other,
            envelope_bytes=read_vector("teep/suit_uri.hex"),
            version_label="1",
            actor=operator,
        )
    assert not ComponentVersion.objects.exists()


def test_envelope_whose_digest_does_not_match_its_manifest_is_refused(
    operator, example_signer, read_vector
):
    data = read_vector("teep/suit_uri.hex")
    digest = bytes.fromhex("b39b52b0b747ea79588c190f567bfc2c8437ba8a73f7ea983182e79f0148d59b")
    tampered = data.replace(digest, bytes([digest[0] ^ 1]) + digest[1:])
    assert tampered != data
    with pytest.raises(CatalogueError, match="manifest digest does not match"):
        services.upload_signed_envelope(
            component=example_signer.components.get(),
            envelope_bytes=tampered,
            version_label="1",
            actor=operator,
        )


def test_garbage_is_refused_with_the_parsers_message(operator, example_signer):
    with pytest.raises(CatalogueError, match="not a valid SUIT envelope: not a SUIT envelope"):
        services.upload_signed_envelope(
            component=example_signer.components.get(),
            envelope_bytes=b"\xa1\x01",
            version_label="1",
            actor=operator,
        )


def test_signer_not_allowed_for_the_component_is_refused(operator, example_signer, read_vector):
    example_signer.components.clear()
    component = TrustedComponentFactory()
    with pytest.raises(CatalogueError, match="not allowed to sign"):
        services.upload_signed_envelope(
            component=component,
            envelope_bytes=read_vector("teep/suit_uri.hex"),
            version_label="1",
            signer=example_signer,
            actor=operator,
        )
    with pytest.raises(CatalogueError, match="no registered TC signer key"):
        services.upload_signed_envelope(
            component=component,
            envelope_bytes=read_vector("teep/suit_uri.hex"),
            version_label="1",
            actor=operator,
        )


def test_tagged_envelope_is_stored_untagged(operator, example_signer, read_vector):
    data = read_vector("teep/suit_uri.hex")
    version = services.upload_signed_envelope(
        component=example_signer.components.get(),
        envelope_bytes=b"\xd8\x6b" + data,
        version_label="1",
        actor=operator,
    )
    assert bytes(version.envelope) == data


# --- sequence numbers only grow ---------------------------------------------------------------


def test_sequence_number_cannot_roll_back(operator, example_component, media_root):
    older = upload(example_component, operator, 4)
    upload(example_component, operator, 5, release=True)

    with pytest.raises(CatalogueError, match="already has a version with sequence number 5|roll"):
        upload(example_component, operator, 5)
    with pytest.raises(
        CatalogueError,
        match="would roll SecureFS TA back: sequence number 5 has already been released",
    ):
        upload(example_component, operator, 3)
    with pytest.raises(CatalogueError, match="would roll"):
        services.release_version(older, actor=operator)
    older.refresh_from_db()
    assert older.state == ComponentVersion.State.DRAFT
    assert ComponentVersion.objects.count() == 2
    assert len(stored_files(media_root)) == 2


def test_duplicate_draft_sequence_number_is_refused(operator, example_component, media_root):
    upload(example_component, operator, 7)
    with pytest.raises(
        CatalogueError, match="already has a version with sequence number 7"
    ) as caught:
        upload(example_component, operator, 7, data=b"another binary")
    assert caught.value.field == "sequence_number"
    assert ComponentVersion.objects.count() == 1
    assert len(stored_files(media_root)) == 1


def test_withdrawn_versions_still_count_for_rollback(operator, example_component):
    released = upload(example_component, operator, 5, release=True)
    services.withdraw_version(released, actor=operator, reason="bug")
    with pytest.raises(CatalogueError, match="would roll"):
        upload(example_component, operator, 5)
    assert (
        upload(example_component, operator, 6, release=True).state
        == ComponentVersion.State.RELEASED
    )


def test_signed_envelope_rollback_is_refused(operator, example_signer, read_vector):
    component = example_signer.components.get()
    upload(component, operator, 9, release=True)
    with pytest.raises(CatalogueError, match="sequence number 3 would roll"):
        services.upload_signed_envelope(
            component=component,
            envelope_bytes=read_vector("teep/suit_uri.hex"),
            version_label="1",
            actor=operator,
        )


# --- state changes ----------------------------------------------------------------------------


def test_release_and_withdraw_are_audited(operator, example_component):
    version = upload(example_component, operator, 1)
    services.release_version(version, actor=operator)
    version.refresh_from_db()
    assert version.state == ComponentVersion.State.RELEASED and version.released_at is not None
    services.withdraw_version(version, actor=operator, reason="superseded")
    version.refresh_from_db()
    assert version.state == ComponentVersion.State.WITHDRAWN
    assert version.state_changed_reason == "superseded"
    actions = list(
        AuditEvent.objects.filter(object_id=str(version.pk)).values_list("action", flat=True)
    )
    assert set(actions) == {
        "component_version.upload-binary",
        "component_version.release",
        "component_version.withdraw",
    }
    withdraw = AuditEvent.objects.get(action="component_version.withdraw")
    assert (
        withdraw.detail["before"]["state"] == "released"
        and withdraw.detail["after"]["state"] == "withdrawn"
    )
    assert withdraw.reason == "superseded"


def test_only_drafts_are_released_and_compromised_versions_stay(operator, example_component):
    version = upload(example_component, operator, 1, release=True)
    with pytest.raises(CatalogueError, match="only a draft can be released"):
        services.release_version(version, actor=operator)
    ComponentVersion.objects.filter(pk=version.pk).update(state=ComponentVersion.State.COMPROMISED)
    with pytest.raises(CatalogueError, match="cannot be withdrawn"):
        services.withdraw_version(version, actor=operator)


# --- a failure half-way leaves nothing ------------------------------------------------------


def test_failure_after_storing_the_file_leaves_no_row_and_no_file(
    operator, example_component, media_root, monkeypatch
):
    def audit_fails(**kwargs):
        raise RuntimeError("audit database unavailable")

    monkeypatch.setattr(services, "record_operator_action", audit_fails)
    with pytest.raises(RuntimeError, match="audit database unavailable"):
        upload(example_component, operator, 1)
    assert not ComponentVersion.objects.exists()
    assert stored_files(media_root) == []


def test_refused_upload_stores_nothing(operator, example_component, media_root):
    upload(example_component, operator, 2, release=True)
    before = stored_files(media_root)
    with pytest.raises(CatalogueError):
        upload(example_component, operator, 1)
    assert stored_files(media_root) == before
