"""Admin: attestation keys and reference values (register, import), records, history and fleet."""

import json

import cbor2
import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from apps.attestation import services
from apps.attestation.admin import AttestationRecordInline, attestation_history_html
from apps.attestation.appraisal import Appraisal
from apps.attestation.models import AttestationKey, ReferenceValue
from apps.audit.models import AuditEvent
from apps.devices.models import Device
from apps.devices.services import register_agent
from apps.teep.wire import eat
from apps.teep.wire.keys import TeepKey

pytestmark = pytest.mark.django_db

REFERENCE_CSV = (
    b"""name,claim,measurement_name,expected,scope_hwmodel
TEEP Agent 1.3.4,measurement,TEEP Agent,DEADBEEF"""
    + b"deadbeef" * 7
    + b""",
chip model,hwmodel,,54:9d:ce:cc:8b:98:7c:73:7b:44:e4:0f:7c:63:5c:e8,
hw 1.3.4,hwversion,,1.3.4,549dcecc8b987c737b44e40f7c635ce8
"""
)


@pytest.fixture
def viewer(client):
    user = User.objects.create_user("viewer", password="x" * 12, is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=[
                "view_attestationrecord",
                "view_attestationkey",
                "view_referencevalue",
                "view_device",
            ]
        )
    )
    client.force_login(user)
    return client


def test_import_reference_values_from_csv_then_json(admin_client):
    url = reverse("admin:attestation_referencevalue_import")
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(url, {"file": SimpleUploadedFile("refs.csv", REFERENCE_CSV)})
    assert response.status_code == 302
    assert ReferenceValue.objects.count() == 3
    measurement = ReferenceValue.objects.get(claim="measurement")
    assert measurement.expected == "deadbeef" * 8 and measurement.measurement_name == "TEEP Agent"
    assert (
        ReferenceValue.objects.get(claim="hwmodel").expected == "549dcecc8b987c737b44e40f7c635ce8"
    )
    assert (
        ReferenceValue.objects.get(claim="hwversion").scope_hwmodel
        == "549dcecc8b987c737b44e40f7c635ce8"
    )
    again = [
        {"name": "chip model", "claim": "hwmodel", "expected": "549DCECC8B987C737B44E40F7C635CE8"},
        {"name": "oem", "claim": "oemid", "expected": "pen:64242"},
    ]
    admin_client.post(url, {"file": SimpleUploadedFile("refs.json", json.dumps(again).encode())})
    assert (
        ReferenceValue.objects.count() == 4
        and ReferenceValue.objects.get(claim="oemid").expected == "pen:64242"
    )
    event = (
        AuditEvent.objects.filter(action="attestation.reference-value.import").order_by("id").last()
    )
    assert (
        event.detail["created"] == 1
        and event.detail["skipped"] == 1
        and event.actor_name == "admin"
    )


def test_a_bad_import_file_changes_nothing_and_says_which_row(admin_client):
    url = reverse("admin:attestation_referencevalue_import")
    bad = REFERENCE_CSV + b"broken,hwmodel,,not-hex,\n"
    response = admin_client.post(url, {"file": SimpleUploadedFile("refs.csv", bad)})
    assert response.status_code == 200 and "row 4: hwmodel must be hex" in response.content.decode()
    assert not ReferenceValue.objects.exists()


def test_reference_value_add_form_goes_through_the_service(admin_client):
    response = admin_client.post(
        reverse("admin:attestation_referencevalue_add"),
        {"name": "v", "claim": "hwversion", "expected": "2.0"},
    )
    assert response.status_code == 302
    assert ReferenceValue.objects.get().expected == "2.0"
    assert AuditEvent.objects.filter(action="attestation.reference-value.create").exists()
    invalid = admin_client.post(
        reverse("admin:attestation_referencevalue_add"),
        {"name": "m", "claim": "measurement", "expected": "aa"},
    )
    assert invalid.status_code == 200 and "needs the measured component" in invalid.content.decode()


def test_register_an_attestation_key(admin_client):
    key = TeepKey.generate("ed25519")
    url = reverse("admin:attestation_attestationkey_register")
    assert admin_client.get(reverse("admin:attestation_attestationkey_add"))["Location"] == url
    bad = admin_client.post(
        url, {"name": "x", "purpose": "endorsement", "public_key_text": "garbage"}
    )
    assert "not a usable public key" in bad.content.decode()
    response = admin_client.post(
        url,
        {
            "name": "SoC attester",
            "purpose": "endorsement",
            "public_key_text": key.public_pem().decode(),
            "ueid": "01ab",
        },
    )
    row = AttestationKey.objects.get()
    assert response["Location"] == reverse("admin:attestation_attestationkey_change", args=[row.pk])
    assert row.kid == key.kid.hex() and row.ueid == "01ab" and row.teep_key() == key.public()
    assert AuditEvent.objects.get(action="attestation.key.register").actor_name == "admin"
    duplicate = admin_client.post(
        url, {"name": "again", "purpose": "verifier", "public_key_text": key.public_pem().decode()}
    )
    assert "already registered" in duplicate.content.decode()
    page = admin_client.get(reverse("admin:attestation_attestationkey_change", args=[row.pk]))
    assert page.status_code == 200 and row.kid in page.content.decode()


def test_deactivate_action_is_audited(admin_client):
    row = services.register_attestation_key(
        public_key_bytes=TeepKey.generate().public_pem(), name="k"
    )
    admin_client.post(
        reverse("admin:attestation_attestationkey_changelist"),
        {"action": "deactivate", "_selected_action": [row.pk]},
    )
    row.refresh_from_db()
    assert (
        not row.active and AuditEvent.objects.filter(action="attestation.key.deactivate").exists()
    )


def test_import_attestation_keys_from_json_and_a_jwk_set(admin_client):
    p256, ed = TeepKey.generate(), TeepKey.generate("ed25519")
    cose_hex = cbor2.dumps(ed.to_cose_key(), canonical=True).hex()
    document = [
        {"name": "p256", "public_key": p256.public_pem().decode(), "purpose": "verifier"},
        {"name": "ed", "public_key": cose_hex},
    ]
    url = reverse("admin:attestation_attestationkey_import")
    admin_client.post(url, {"file": SimpleUploadedFile("keys.json", json.dumps(document).encode())})
    assert set(AttestationKey.objects.values_list("name", "purpose")) == {
        ("p256", "verifier"),
        ("ed", "endorsement"),
    }
    other = TeepKey.generate().to_cose_key()
    jwks = {
        "keys": [
            {
                "kty": "EC",
                "crv": "P-256",
                "kid": "from-jwks",
                "x": eat.b64url(other[-2]),
                "y": eat.b64url(other[-3]),
            }
        ]
    }
    admin_client.post(url, {"file": SimpleUploadedFile("keys.jwks", json.dumps(jwks).encode())})
    assert AttestationKey.objects.get(name="from-jwks").purpose == "endorsement"


def test_records_list_history_page_and_fleet_view(admin_client):
    agent = TeepKey.generate()
    device = register_agent(public_key_bytes=agent.public_pem(), name="dev-1")
    services.record_appraisal(
        device,
        Appraisal(
            status="affirming",
            backend="builtin",
            trust_vector={"instance-identity": 2},
            reasons=["all good"],
        ),
    )
    services.record_appraisal(
        device,
        Appraisal(
            status="warning",
            backend="veraison",
            trust_vector={"executables": 33},
            reasons=["measurement <x>"],
        ),
    )
    listing = admin_client.get(
        reverse("admin:attestation_attestationrecord_changelist") + "?status=warning"
    )
    assert listing.status_code == 200 and "measurement &lt;x&gt;" in listing.content.decode()
    history = admin_client.get(reverse("admin:attestation_history", args=[device.pk]))
    text = history.content.decode()
    assert history.status_code == 200 and "all good" in text and "executables 33" in text
    assert "attestation is stale, failed or missing" in text
    assert "<x>" not in attestation_history_html(device)  # escaped
    fleet = admin_client.get(reverse("admin:attestation_fleet"))
    assert fleet.status_code == 200 and "dev-1" in fleet.content.decode()
    record = device.attestation_records.first()
    detail = admin_client.get(
        reverse("admin:attestation_attestationrecord_change", args=[record.pk])
    )
    assert detail.status_code == 200


def test_inline_for_the_device_page_is_read_only():
    inline = AttestationRecordInline(parent_model=Device, admin_site=admin.site)
    assert not inline.has_add_permission(None) and not inline.has_change_permission(None)


def test_viewers_see_history_but_cannot_import_or_register(viewer):
    device = register_agent(public_key_bytes=TeepKey.generate().public_pem())
    assert viewer.get(reverse("admin:attestation_history", args=[device.pk])).status_code == 200
    assert viewer.get(reverse("admin:attestation_fleet")).status_code == 200
    assert viewer.get(reverse("admin:attestation_referencevalue_import")).status_code == 403
    assert viewer.get(reverse("admin:attestation_attestationkey_register")).status_code == 403
    assert viewer.get(reverse("admin:attestation_attestationkey_import")).status_code == 403


def test_anonymous_users_are_sent_to_login(client):
    response = client.get(reverse("admin:attestation_fleet"))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_a_reference_value_is_deactivated_not_edited(admin_client):
    row = services.create_reference_value(name="v", claim="hwversion", expected="2.0")
    url = reverse("admin:attestation_referencevalue_change", args=[row.pk])
    # "active" unticked; "expected" is read-only on an existing row
    response = admin_client.post(url, {"expected": "6.6"})
    assert response.status_code == 302
    row.refresh_from_db()
    assert not row.active and row.expected == "2.0"
    event = AuditEvent.objects.get(action="attestation.reference-value.change")
    assert event.detail["after"] == {"active": False}
