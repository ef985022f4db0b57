"""The admin: upload personalization data for one device, list it, register device keys.
Plaintext goes in through the form and never comes back out."""

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.audit.models import AuditEvent
from apps.personalization.models import DeviceEncryptionKey, PersonalizationData
from apps.teep.wire.keys import TeepKey

from .conftest import PLAINTEXT
from .factories import UserFactory

pytestmark = pytest.mark.django_db

ADD_URL = "/admin/personalization/personalizationdata/add/"
LIST_URL = "/admin/personalization/personalizationdata/"
KEY_ADD_URL = "/admin/personalization/deviceencryptionkey/add/"


@pytest.fixture
def admin_client(client, operator):
    client.force_login(operator)
    return client


def upload(device, component, **data):
    return {"device": device.pk, "component": component.pk, "depends_on": "", **data}


def test_anonymous_is_sent_to_the_login_page(client):
    response = client.get(ADD_URL)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_staff_without_add_permission_cannot_upload(client, device, data_component):
    user = UserFactory(is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_personalizationdata"))
    client.force_login(user)
    assert client.get(LIST_URL).status_code == 200
    response = client.post(ADD_URL, upload(device, data_component, data_text="x"))
    assert response.status_code == 403
    assert not PersonalizationData.objects.exists()


def test_text_upload_stores_encrypted_and_shows_digest_and_size_only(
    admin_client, device, data_component
):
    response = admin_client.post(
        ADD_URL, upload(device, data_component, data_text=PLAINTEXT.decode()), follow=True
    )
    assert response.status_code == 200
    data = PersonalizationData.objects.get()
    assert (data.device, data.component, data.plaintext_size) == (device, data_component, 61)
    assert bytes(data.ciphertext) != PLAINTEXT
    page = response.content
    assert data.plaintext_sha256.encode() in page and b"61" in page
    assert b"FOO Bar" not in page and b"0123456789abfcdef" not in page
    listing = admin_client.get(LIST_URL).content
    assert data.plaintext_sha256[:16].encode() in listing
    assert b"FOO Bar" not in listing
    assert AuditEvent.objects.get(action="personalization.store").actor.username == "operator"


def test_file_upload(admin_client, device, data_component):
    file = SimpleUploadedFile("config.json", PLAINTEXT)
    response = admin_client.post(ADD_URL, upload(device, data_component, data_file=file))
    assert response.status_code == 302
    data = PersonalizationData.objects.get()
    assert data.plaintext_size == 61 and response["Location"].endswith(f"/{data.pk}/change/")


@pytest.mark.parametrize(
    "extra, message",
    [
        ({}, b"Give the personalization data"),
        (
            {"data_text": "a", "data_file": SimpleUploadedFile("a.json", b"b")},
            b"not both",
        ),
        ({"data_text": "x" * (64 * 1024 + 1)}, b"larger than"),
    ],
)
def test_upload_errors_are_shown_and_nothing_is_stored(
    admin_client, device, data_component, extra, message
):
    response = admin_client.post(ADD_URL, upload(device, data_component, **extra))
    assert response.status_code == 200 and message in response.content
    assert not PersonalizationData.objects.exists()


def test_stored_data_cannot_be_edited_or_deleted(admin_client, device, data_component):
    admin_client.post(ADD_URL, upload(device, data_component, data_text="secret"))
    data = PersonalizationData.objects.get()
    change_url = f"{LIST_URL}{data.pk}/change/"
    page = admin_client.get(change_url)
    assert page.status_code == 200 and b"secret" not in page.content.replace(b"Secure", b"")
    assert b'name="_save"' not in page.content
    assert admin_client.post(f"{LIST_URL}{data.pk}/delete/", {"post": "yes"}).status_code == 403
    assert PersonalizationData.objects.count() == 1


def test_register_a_device_key_by_pasting_its_pem(admin_client, device):
    key = TeepKey.generate("p256")
    response = admin_client.post(
        KEY_ADD_URL, {"device": device.pk, "public_key_text": key.public_pem().decode()}
    )
    assert response.status_code == 302
    entry = DeviceEncryptionKey.objects.get()
    assert entry.device == device and entry.kid == key.kid.hex()
    assert entry.registered_by.username == "operator"


def test_an_ed25519_key_is_refused_in_the_form(admin_client, device):
    key = TeepKey.generate("ed25519")
    response = admin_client.post(
        KEY_ADD_URL,
        {"device": device.pk, "public_key_file": SimpleUploadedFile("k.pem", key.public_pem())},
    )
    assert response.status_code == 200 and b"P-256" in response.content
    assert not DeviceEncryptionKey.objects.exists()


def test_a_device_key_is_replaced_from_its_change_page(admin_client, device, device_key):
    entry = DeviceEncryptionKey.objects.get()
    new = TeepKey.generate("p256")
    response = admin_client.post(
        f"/admin/personalization/deviceencryptionkey/{entry.pk}/change/",
        {"public_key_text": new.public_pem().decode()},
    )
    assert response.status_code == 302
    assert DeviceEncryptionKey.objects.get().kid == new.kid.hex()
