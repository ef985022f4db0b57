"""TOTP backup codes (django-otp static tokens): made at enrolment and shown once, each one
passes the second factor once, and with one a user who lost the phone enrols a new
authenticator app without an administrator."""

import re

import pytest
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts import roles, services
from apps.audit.models import AuditEvent
from tests.accounts.helpers import PASSWORD, confirmed_totp_device, current_code, make_user

pytestmark = pytest.mark.django_db
ADMIN = "/admin/"
VERIFY = reverse("accounts:otp-verify")
ENROL = reverse("accounts:otp-enrol")
BACKUP = reverse("accounts:otp-backup-codes")


@pytest.fixture(autouse=True)
def enforced(settings):
    settings.OTP_ENFORCED = True


def log_in(username="carol") -> Client:
    client = Client()
    response = client.post(
        reverse("admin:login"), {"username": username, "password": PASSWORD, "next": ADMIN}
    )
    assert response.status_code == 302
    return client


def shown_codes(response) -> list[str]:
    return re.findall(r"<li><code>([a-z2-7]{8})</code></li>", response.content.decode())


def enrol(client) -> list[str]:
    page = client.get(ENROL)
    assert page.status_code == 200
    device = TOTPDevice.objects.get(user__username="carol", confirmed=False)
    done = client.post(ENROL, {"token": current_code(device), "next": ADMIN})
    assert done.status_code == 200
    return shown_codes(done)


def test_enrolment_shows_ten_single_use_codes_once():
    make_user(roles.SECURITY_OFFICER, username="carol")
    client = log_in()
    codes = enrol(client)
    assert len(codes) == 10 and len(set(codes)) == 10
    stored = set(
        StaticToken.objects.filter(device__user__username="carol").values_list("token", flat=True)
    )
    assert stored == set(codes)
    # Not shown again: the backup codes page only counts them.
    page = client.get(BACKUP).content.decode()
    assert "10 unused backup codes" in page
    assert not any(code in page for code in codes)
    event = AuditEvent.objects.get(action="account.backup-codes")
    assert event.actor.username == "carol" and event.detail["after"] == {"codes_left": 10}


def test_a_backup_code_passes_the_second_factor_once():
    carol = make_user(roles.SECURITY_OFFICER, username="carol")
    confirmed_totp_device(carol)
    code = services.generate_backup_codes(carol, actor=None)[0]

    client = log_in()
    assert client.get(ADMIN)["Location"].startswith(VERIFY)
    done = client.post(VERIFY, {"token": code.upper(), "next": ADMIN})  # as typed from paper
    assert done.status_code == 302 and done["Location"] == ADMIN
    assert client.get(ADMIN).status_code == 200
    assert services.backup_codes_left(carol) == 9
    assert not StaticToken.objects.filter(token=code).exists()
    used = AuditEvent.objects.get(action="account.backup-code-used")
    assert used.actor == carol and used.detail["after"] == {"codes_left": 9}

    again = log_in()
    refused = again.post(VERIFY, {"token": code, "next": ADMIN})
    assert refused.status_code == 200 and "not valid" in refused.content.decode()
    assert again.get(ADMIN)["Location"].startswith(VERIFY)
    assert AuditEvent.objects.filter(action="account.totp-verify", outcome="rejected").exists()


def test_lost_phone_a_backup_code_then_a_new_app_replaces_the_old_one():
    carol = make_user(roles.SECURITY_OFFICER, username="carol")
    lost = confirmed_totp_device(carol)
    code = services.generate_backup_codes(carol, actor=None)[0]

    client = log_in()
    client.post(VERIFY, {"token": code, "next": ADMIN})
    new_codes = enrol(client)  # a verified session may enrol: no administrator involved
    assert not TOTPDevice.objects.filter(pk=lost.pk).exists()
    new_device = TOTPDevice.objects.get(user=carol)
    assert new_device.confirmed
    assert code not in new_codes and len(new_codes) == 10
    enrolled = AuditEvent.objects.filter(action="account.totp-enrol", outcome="ok").get()
    assert enrolled.detail["before"] == {"devices": [lost.persistent_id]}

    TOTPDevice.objects.filter(pk=new_device.pk).update(last_t=-1)  # a later time step
    later = log_in()
    assert later.post(VERIFY, {"token": current_code(new_device)}).status_code == 302


def test_a_new_set_replaces_the_old_one_and_needs_a_verified_session():
    carol = make_user(roles.SECURITY_OFFICER, username="carol")
    device = confirmed_totp_device(carol)
    old = services.generate_backup_codes(carol, actor=None)

    client = log_in()
    assert client.post(BACKUP)["Location"].startswith(VERIFY)  # not before the second factor
    assert set(
        StaticToken.objects.filter(device__user=carol).values_list("token", flat=True)
    ) == set(old)
    client.post(VERIFY, {"token": current_code(device), "next": BACKUP})
    new = shown_codes(client.post(BACKUP))
    assert len(new) == 10 and not set(new) & set(old)
    assert StaticDevice.objects.filter(user=carol).count() == 1

    later = log_in()
    assert later.post(VERIFY, {"token": old[0]}).status_code == 200  # refused
    for throttled in (device, StaticDevice.objects.get(user=carol)):
        throttled.throttle_reset()  # django-otp waits 1 s after a wrong code; skip the wait
    assert later.post(VERIFY, {"token": new[0]}).status_code == 302


def test_a_user_without_an_authenticator_app_is_sent_to_enrol_first():
    make_user(roles.OPERATOR, username="olivia")
    client = log_in("olivia")
    assert client.get(BACKUP)["Location"].startswith(ENROL)
    assert not StaticDevice.objects.exists()


def test_the_admin_never_shows_backup_codes(settings):
    settings.OTP_ENFORCED = False  # the administrator's own second factor is not the point
    carol = make_user(roles.SECURITY_OFFICER, username="carol")
    codes = services.generate_backup_codes(carol, actor=None)
    admin = make_user(None, username="root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    device = StaticDevice.objects.get(user=carol)
    page = client.get(reverse("admin:otp_static_staticdevice_change", args=[device.pk]))
    assert page.status_code == 200
    assert not any(code in page.content.decode() for code in codes)
