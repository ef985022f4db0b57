"""Login hardening: lockout after repeated failures (django-axes), Argon2 hashes, and the
TOTP second factor (django-otp): required for security officers, administrators and
superusers, optional for everybody else."""

import pytest
from django.urls import reverse

from apps.accounts import roles
from apps.api.services import create_token
from apps.audit.models import AuditEvent
from tests.accounts.helpers import (
    PASSWORD,
    confirmed_totp_device,
    current_code,
    make_user,
    mark_session_verified,
)

pytestmark = pytest.mark.django_db
ADMIN = "/admin/"


def login(client, username, password=PASSWORD):
    return client.post(
        reverse("admin:login"), {"username": username, "password": password, "next": ADMIN}
    )


@pytest.fixture
def enforced(settings):
    settings.OTP_ENFORCED = True


# --- lockout ------------------------------------------------------------------------------


def test_five_wrong_passwords_lock_the_account_out_for_that_source(client, settings):
    make_user(roles.OPERATOR, username="alice")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert login(client, "alice", "wrong password").status_code == 200  # the form again
    assert login(client, "alice", "wrong password").status_code == 429
    response = login(client, "alice")  # even the right password, during the cool-off
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_lockout_is_per_user_name_and_source(client, settings):
    make_user(roles.OPERATOR, username="alice")
    make_user(roles.OPERATOR, username="bob")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(client, "alice", "wrong password")
    assert login(client, "bob").status_code == 302


def test_a_success_before_the_limit_resets_the_count(client, settings):
    make_user(roles.OPERATOR, username="alice")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        login(client, "alice", "wrong password")
    assert login(client, "alice").status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        login(client, "alice", "wrong password")
    assert login(client, "alice").status_code == 302


def test_force_login_and_admin_client_are_not_affected(admin_client):
    assert admin_client.get(ADMIN).status_code == 200


def test_passwords_are_hashed_with_argon2():
    assert make_user(roles.VIEWER).password.startswith("argon2")


# --- second factor ----------------------------------------------------------------------


def test_security_officer_without_a_device_is_sent_to_enrolment_then_reaches_the_admin(
    client, enforced
):
    officer = make_user(roles.SECURITY_OFFICER, username="carol")
    assert login(client, "carol").status_code == 302
    response = client.get(ADMIN)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:otp-enrol"))

    page = client.get(response["Location"])
    assert page.status_code == 200
    assert "otpauth://totp/tam-portal%3Acarol?secret=" in page.content.decode()
    assert "<svg" in page.content.decode()  # the QR code
    device = officer.totpdevice_set.get(confirmed=False)

    assert (
        client.post(
            response["Location"],
            {"token": "000000" if current_code(device) != "000000" else "111111"},
        ).status_code
        == 200
    )
    # A wrong code throttles the device (django-otp: 1 s, 2 s, 4 s, ...); wait it out.
    device.refresh_from_db()
    assert not device.verify_is_allowed()[0]
    device.throttle_reset()
    done = client.post(response["Location"], {"token": current_code(device), "next": ADMIN})
    # Enrolled: the backup codes are shown (once), with the way on to where the user was going.
    assert done.status_code == 200 and f'href="{ADMIN}"' in done.content.decode()
    assert client.get(ADMIN).status_code == 200
    device.refresh_from_db()
    assert device.confirmed
    outcomes = list(
        AuditEvent.objects.filter(action="account.totp-enrol").values_list("outcome", flat=True)
    )
    assert sorted(outcomes) == ["ok", "rejected"]


def test_enrolled_security_officer_must_enter_a_code_after_the_password(client, enforced):
    officer = make_user(roles.SECURITY_OFFICER, username="carol")
    device = confirmed_totp_device(officer)
    login(client, "carol")
    response = client.get(reverse("admin:devices_device_changelist"))
    assert response["Location"].startswith(reverse("accounts:otp-verify"))

    wrong = client.post(response["Location"], {"token": "12345x"})
    assert wrong.status_code == 200 and "6-digit" in wrong.content.decode()
    done = client.post(
        response["Location"],
        {"token": current_code(device), "next": reverse("admin:devices_device_changelist")},
    )
    assert done["Location"] == reverse("admin:devices_device_changelist")
    assert client.get(done["Location"]).status_code == 200


def test_a_wrong_code_is_refused_and_audited(client, enforced):
    officer = make_user(roles.SECURITY_OFFICER, username="carol")
    device = confirmed_totp_device(officer)
    login(client, "carol")
    code = "000000" if current_code(device) != "000000" else "111111"
    assert client.post(reverse("accounts:otp-verify"), {"token": code}).status_code == 200
    assert client.get(ADMIN).status_code == 302
    assert AuditEvent.objects.get(action="account.totp-verify").outcome == "rejected"


def test_superuser_must_enrol_too(client, enforced):
    """The embedded default's bootstrap account is a superuser: it enrols at first login."""
    make_user(None, username="operator", is_staff=True, is_superuser=True)
    login(client, "operator")
    assert client.get(ADMIN)["Location"].startswith(reverse("accounts:otp-enrol"))


def test_operator_without_a_device_needs_no_code(client, enforced):
    make_user(roles.OPERATOR, username="olivia")
    login(client, "olivia")
    assert client.get(ADMIN).status_code == 200
    assert client.get(reverse("accounts:otp-enrol")).status_code == 200  # may enrol


def test_operator_who_enrolled_must_use_the_code(client, enforced):
    operator = make_user(roles.OPERATOR, username="olivia")
    confirmed_totp_device(operator)
    login(client, "olivia")
    assert client.get(ADMIN)["Location"].startswith(reverse("accounts:otp-verify"))


def test_a_second_device_needs_a_verified_session(client, enforced):
    operator = make_user(roles.OPERATOR, username="olivia")
    device = confirmed_totp_device(operator)
    login(client, "olivia")
    assert client.get(reverse("accounts:otp-enrol"))["Location"].startswith(
        reverse("accounts:otp-verify")
    )
    mark_session_verified(client, device)
    assert client.get(reverse("accounts:otp-enrol")).status_code == 200


def test_next_never_leaves_the_site(client, enforced):
    officer = make_user(roles.SECURITY_OFFICER, username="carol")
    device = confirmed_totp_device(officer)
    login(client, "carol")
    done = client.post(
        reverse("accounts:otp-verify"),
        {"token": current_code(device), "next": "https://evil.example/"},
    )
    assert done["Location"] == reverse("admin:index")


def test_api_session_without_second_factor_is_refused_but_a_token_works(client, enforced):
    officer = make_user(roles.SECURITY_OFFICER, username="carol")
    login(client, "carol")
    response = client.get("/api/v1/devices/")
    assert response.status_code == 403 and "Second factor" in response.json()["detail"]
    _, raw = create_token(officer, acting_user=None)
    from django.test import Client

    assert Client().get("/api/v1/devices/", HTTP_AUTHORIZATION=f"Token {raw}").status_code == 200


def test_logout_works_before_the_second_factor(client, enforced):
    make_user(roles.SECURITY_OFFICER, username="carol")
    login(client, "carol")
    assert client.post(reverse("admin:logout")).status_code == 200
    assert "_auth_user_id" not in client.session
