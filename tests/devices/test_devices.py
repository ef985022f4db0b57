"""Registering agents, publishing TAM keys, and the read-only device page."""

import json
from io import StringIO

import cbor2
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.devices.models import Device
from apps.devices.services import DeviceError, register_agent
from apps.teep.tam_keys import tam_keys
from apps.teep.wire.keys import TeepKey, load_public_key

pytestmark = pytest.mark.django_db


def test_register_agent_command_prints_the_rfc9679_kid(tmp_path):
    key = TeepKey.generate("p256")
    (tmp_path / "agent.pem").write_bytes(key.public_pem())
    out = StringIO()
    call_command("register_agent", "--public-key", str(tmp_path / "agent.pem"), "--name", "lab-1",
                 "--tag", "lab", stdout=out)
    assert out.getvalue().strip() == key.kid.hex()
    device = Device.objects.get(kid=key.kid.hex())
    assert device.name == "lab-1" and [t.name for t in device.tags.all()] == ["lab"]
    assert load_public_key(bytes(device.public_key)) == key.public()
    assert AuditEvent.objects.filter(action="device.register", device_kid=device.kid).exists()


def test_register_agent_kidless_flags_the_device(tmp_path):
    key = TeepKey.generate("p256")
    (tmp_path / "agent.pem").write_bytes(key.public_pem())
    call_command("register_agent", "--public-key", str(tmp_path / "agent.pem"), "--kidless", stdout=StringIO())
    assert Device.objects.get(kid=key.kid.hex()).accepts_kidless
    other = TeepKey.generate("p256")
    (tmp_path / "other.pem").write_bytes(other.public_pem())
    call_command("register_agent", "--public-key", str(tmp_path / "other.pem"), stdout=StringIO())
    assert not Device.objects.get(kid=other.kid.hex()).accepts_kidless


def test_register_agent_accepts_a_cose_key_and_refuses_duplicates_and_garbage(tmp_path):
    key = TeepKey.generate("ed25519")
    (tmp_path / "agent.cose").write_bytes(cbor2.dumps(key.to_cose_key()))
    call_command("register_agent", "--public-key", str(tmp_path / "agent.cose"), stdout=StringIO())
    with pytest.raises(CommandError, match="already registered"):
        call_command("register_agent", "--public-key", str(tmp_path / "agent.cose"), stdout=StringIO())
    (tmp_path / "junk").write_bytes(b"not a key")
    with pytest.raises(CommandError, match="not a usable agent public key"):
        call_command("register_agent", "--public-key", str(tmp_path / "junk"), stdout=StringIO())
    with pytest.raises(DeviceError):
        register_agent(public_key_bytes=b"")


def test_tam_keys_export_prints_both_mandatory_keys_with_kids():
    out = StringIO()
    call_command("tam_keys", "export", "--json", stdout=out)
    exported = json.loads(out.getvalue())["tam_keys"]
    by_kid = {entry["kid"]: entry for entry in exported}
    for key in tam_keys().public_keys:
        entry = by_kid[key.kid.hex()]
        assert load_public_key(entry["pem"].encode()) == key
        assert load_public_key(bytes.fromhex(entry["cose_key"])) == key
    assert {tuple(e["algorithms"]) for e in exported} >= {(-9, -7), (-19, -8)}
    text = StringIO()
    call_command("tam_keys", "export", stdout=text)
    assert "BEGIN PUBLIC KEY" in text.getvalue() and "PRIVATE" not in text.getvalue()


def test_device_page_shows_components_and_exchange_timeline(admin_client):
    from apps.audit.services import record_exchange

    key = TeepKey.generate("p256")
    device = register_agent(public_key_bytes=key.public_pem(), name="kiosk")
    record_exchange(action="teep.query-response", outcome="dropped", device_kid=device.kid,
                    reason="unknown, expired or already used token", detail={"in": "query-response"})
    page = admin_client.get(reverse("admin:devices_device_change", args=[device.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert device.kid in html and "Installed components" in html
    assert "Attestation history" in html and "0 unanswered" in html
    assert "BEGIN PUBLIC KEY" in html
    assert "unknown, expired or already used token" in html
    listing = admin_client.get(reverse("admin:devices_device_changelist"))
    assert "kiosk" in listing.content.decode()


def test_register_view_in_the_admin(admin_client):
    key = TeepKey.generate("ed25519")
    url = reverse("admin:devices_device_register")
    bad = admin_client.post(url, {"public_key_text": "garbage"})
    assert bad.status_code == 200 and "not a usable agent public key" in bad.content.decode()
    assert not Device.objects.exists()
    good = admin_client.post(url, {"public_key_text": key.public_pem().decode(), "name": "n1", "tags": "a, b"})
    assert good.status_code == 302
    device = Device.objects.get(kid=key.kid.hex())
    assert sorted(t.name for t in device.tags.all()) == ["a", "b"]
    kidless_key = TeepKey.generate("p256")
    admin_client.post(url, {"public_key_text": kidless_key.public_pem().decode(), "accepts_kidless": "on"})
    assert Device.objects.get(kid=kidless_key.kid.hex()).accepts_kidless
    assert not device.accepts_kidless
    keys_page = admin_client.get(reverse("admin:devices_device_tam_keys"))
    assert all(k.kid.hex() in keys_page.content.decode() for k in tam_keys().public_keys)
