"""The console as a product: its name in every title, its stylesheet on every page, names
people read instead of framework labels, no link into a 404."""

import re

import pytest
from django.urls import reverse

from apps.accounts import roles
from apps.dashboard.badges import badge, state_badge
from tests.accounts.helpers import client_for, make_user

pytestmark = pytest.mark.django_db


def title_of(html: str) -> str:
    return re.search(r"<title>(.*?)</title>", html, re.S).group(1).strip()


@pytest.mark.parametrize(
    "url",
    [
        reverse("admin:index"),
        reverse("admin:devices_device_changelist"),
        reverse("admin:audit_auditevent_changelist"),
        reverse("admin:policies_compromiseresponse_changelist"),
    ],
)
def test_admin_pages_name_the_product_and_load_the_console_stylesheet(url):
    client, _ = client_for(roles.ADMINISTRATOR)
    html = client.get(url).content.decode()
    assert title_of(html).endswith("| tam-portal")
    assert "Django" not in title_of(html)
    assert "/static/console/console.css" in html
    assert "tam-portal: Trusted Application Manager" in html


def test_second_factor_pages_are_titled_with_the_product_name(client, settings):
    settings.OTP_ENFORCED = True
    user = make_user(roles.SECURITY_OFFICER, username="sam")
    client.force_login(user)
    html = client.get(reverse("accounts:otp-enrol")).content.decode()
    assert title_of(html) == "Enrol an authenticator app | tam-portal"
    assert "Django administration" not in html
    assert "tam-portal: Trusted Application Manager" in html


def test_no_view_site_link_into_a_404():
    client, _ = client_for(roles.VIEWER)
    html = client.get(reverse("admin:index")).content.decode()
    assert "View site" not in html


def test_the_totp_app_has_a_name_people_read():
    client, _ = client_for(roles.ADMINISTRATOR)
    html = client.get(reverse("admin:index")).content.decode()
    assert "Second factor (authenticator apps)" in html
    assert "Otp_Totp" not in html and "OTP_TOTP" not in html


def test_renaming_the_totp_app_keeps_the_accounts_app_config():
    """Its ready() hooks the roles' sync after every migrate (and test flush)."""
    from django.apps import apps

    from apps.accounts.apps import AccountsConfig

    assert type(apps.get_app_config("accounts")) is AccountsConfig
    assert apps.get_app_config("otp_totp").verbose_name == "Second factor (authenticator apps)"


def test_console_pages_carry_no_inline_style_or_script():
    """A Content-Security-Policy without 'unsafe-inline' must not break the console."""
    client, _ = client_for(roles.ADMINISTRATOR)
    html = client.get(reverse("admin:index")).content.decode()
    assert "<style" not in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)


def test_badges_carry_their_word_and_a_tone_class():
    assert str(state_badge("device", "retired", "Retired")) == (
        '<span class="badge badge-muted">Retired</span>'
    )
    assert 'badge-bad">Failed' in state_badge("delivery", "failed", "Failed")
    assert 'badge-bad">compromised' in state_badge("version", "compromised")
    assert "badge-muted" in state_badge("outcome", "something new")  # unknown: neutral
    assert "&lt;b&gt;" in badge("<b>", "ok")
    with pytest.raises(ValueError):
        badge("x", "purple")
