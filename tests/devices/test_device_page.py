"""The device page and list for people: names instead of numbers and hex, the path to the
device's whole history, and an old error shown as resolved once a later exchange succeeded."""

import re
from datetime import timedelta
from unittest import mock
from urllib.parse import quote

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.accounts import roles
from apps.audit.services import record_exchange
from apps.devices.models import Device
from apps.teep.wire.keys import TeepKey
from tests.accounts.helpers import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def device(db):
    from apps.devices.services import register_agent

    device = register_agent(public_key_bytes=TeepKey.generate("p256").public_pem(), name="lab-7")
    Device.objects.filter(pk=device.pk).update(
        signing_alg=-9,
        numbering="draft-26",
        last_error_code=11,
        last_error_name="ERR_MANIFEST_PROCESSING_FAILED",
        last_error_msg="digest mismatch",
        agent_cipher_suites=[[[18, -9]], [[18, -19]]],
        state="active",
    )
    device.refresh_from_db()
    return device


def at(moment, **kwargs):
    with mock.patch("django.utils.timezone.now", return_value=moment):
        return record_exchange(**kwargs)


@pytest.fixture
def viewer(db):
    return client_for(roles.VIEWER)[0]


def page(client, device):
    return client.get(reverse("admin:devices_device_change", args=[device.pk])).content.decode()


def test_algorithm_cipher_suites_and_error_code_are_named(device, viewer):
    html = page(viewer, device)
    assert "ESP256 (-9)" in html and "Signing alg:" not in html
    assert "COSE_Sign1 ESP256 (-9); COSE_Sign1 Ed25519 (-19)" in html
    assert "ERR_MANIFEST_PROCESSING_FAILED (11)" in html
    assert "Last error code" not in html


def test_an_error_code_without_a_recorded_name_is_named_from_the_devices_numbering(device, viewer):
    Device.objects.filter(pk=device.pk).update(
        last_error_name="", last_error_code=17, numbering="draft-25"
    )
    assert "ERR_MANIFEST_PROCESSING_FAILED (17)" in page(viewer, device)


def test_an_error_stays_an_error_until_a_later_update_succeeds(device, viewer):
    now = timezone.now()
    Device.objects.filter(pk=device.pk).update(last_error_at=now - timedelta(hours=1))
    html = page(viewer, device)
    assert 'badge-bad">error</span> ERR_MANIFEST_PROCESSING_FAILED (11)' in html
    assert f"at {now - timedelta(hours=1):%Y-%m-%d %H:%M} UTC" in html
    assert "resolved" not in html

    # The devices service sets error_resolved_at when a later Update succeeds.
    Device.objects.filter(pk=device.pk).update(error_resolved_at=now)
    html = page(viewer, device)
    assert 'badge-ok">resolved' in html
    assert f"a later Update succeeded at {now:%Y-%m-%d %H:%M} UTC" in html
    assert "digest mismatch" in html  # the agent's own message is kept

    listing = viewer.get(reverse("admin:devices_device_changelist")).content.decode()
    assert 'badge-ok">resolved' in listing


def test_the_device_page_links_to_its_full_exchange_history(device, viewer):
    html = page(viewer, device)
    url = f"{reverse('admin:audit_auditevent_changelist')}?device={device.kid}"
    assert url in html and "Full exchange history" in html
    client = viewer
    at(timezone.now(), action="teep.connect", outcome="query-request", device_kid=device.kid)
    at(timezone.now(), action="teep.connect", outcome="query-request", device_kid="ff" * 32)
    history = client.get(url)
    assert history.status_code == 200
    assert {e.device_kid for e in history.context["cl"].result_list} == {device.kid}
    assert quote(device.kid) == device.kid


def test_an_unnamed_device_reads_as_a_short_label_not_hex(device, viewer):
    Device.objects.filter(pk=device.pk).update(name="")
    device.refresh_from_db()
    label = str(device)
    assert (
        label
        == f"agent {device.kid[:4]}-{device.kid[4:8]}, registered {device.registered_at:%Y-%m-%d}"
    )
    client = viewer
    listing = client.get(reverse("admin:devices_device_changelist")).content.decode()
    assert label in listing and "…" not in label


def test_device_states_are_coloured_badges(device, viewer):
    client = viewer
    listing = client.get(reverse("admin:devices_device_changelist")).content.decode()
    assert '<span class="badge badge-ok">Active</span>' in listing


def test_renaming_and_retagging_a_device_in_the_admin_is_audited(device):
    from apps.audit.models import AuditEvent
    from apps.devices.models import Tag

    client, user = client_for(roles.OPERATOR)
    eu = Tag.objects.create(name="fleet-eu")
    url = reverse("admin:devices_device_change", args=[device.pk])
    management = dict(
        re.findall(
            r'name="([\w-]+-(?:TOTAL|INITIAL|MIN_NUM|MAX_NUM)_FORMS)" value="(\d+)"',
            client.get(url).content.decode(),
        )
    )
    response = client.post(url, {"name": "lab-7b", "tags": [eu.pk], **management})
    assert response.status_code == 302, response.content.decode()[:2000]
    device.refresh_from_db()
    assert device.name == "lab-7b" and list(device.tags.values_list("name", flat=True)) == [
        "fleet-eu"
    ]
    event = AuditEvent.objects.get(action="device.change")
    assert event.actor == user and event.device_kid == device.kid
    assert event.detail["before"] == {"name": "lab-7", "tags": []}
    assert event.detail["after"] == {"name": "lab-7b", "tags": ["fleet-eu"]}


def test_flagging_a_device_kidless_in_the_admin_is_audited(device):
    from apps.audit.models import AuditEvent

    client, user = client_for(roles.OPERATOR)
    url = reverse("admin:devices_device_change", args=[device.pk])
    page = client.get(url).content.decode()
    assert 'name="accepts_kidless"' in page
    management = dict(
        re.findall(r'name="([\w-]+-(?:TOTAL|INITIAL|MIN_NUM|MAX_NUM)_FORMS)" value="(\d+)"', page)
    )
    response = client.post(url, {"name": device.name, "accepts_kidless": "on", **management})
    assert response.status_code == 302, response.content.decode()[:2000]
    device.refresh_from_db()
    assert device.accepts_kidless
    event = AuditEvent.objects.get(action="device.change")
    assert event.actor == user
    assert event.detail["before"]["accepts_kidless"] is False
    assert event.detail["after"]["accepts_kidless"] is True
