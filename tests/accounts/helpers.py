"""Shared helpers for per-role tests (NetBox `utilities/testing` style): one user per role,
clients logged in as them, and the expected answer per role for each page or endpoint.

`ROLES_UNDER_TEST` is the matrix every permission test walks: anonymous, viewer, operator,
security officer (administrator where it matters)."""

from __future__ import annotations

import django_otp
from django.contrib.auth import get_user_model
from django.test import Client
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts import roles, services

PASSWORD = "correct horse battery staple"
ANONYMOUS = "anonymous"
ROLES_UNDER_TEST = (ANONYMOUS, roles.VIEWER, roles.OPERATOR, roles.SECURITY_OFFICER)


def make_user(role: str | None = None, *, username: str | None = None, **extra):
    """A user holding `role` (through its group, as in production); no role = no permission."""
    username = username or (role or "nobody").replace(" ", "-")
    user = get_user_model().objects.create_user(username=username, password=PASSWORD, **extra)
    if role:
        services.assign_role(user, role, acting_user=None)
    return user


def client_for(role: str) -> tuple[Client, object | None]:
    """(a client logged in as a fresh user of `role`, that user); anonymous: (Client(), None)."""
    client = Client()
    if role == ANONYMOUS:
        return client, None
    user = make_user(role)
    client.force_login(user)
    return client, user


def confirmed_totp_device(user) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="test app", confirmed=True)


def current_code(device: TOTPDevice) -> str:
    code = totp(
        device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=device.drift
    )
    return f"{code:0{device.digits}d}"


def mark_session_verified(client: Client, device: TOTPDevice) -> None:
    """As if the user had entered a code (django-otp keeps the device id in the session)."""
    session = client.session
    session[django_otp.DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()


def expected(statuses: dict[str, int], role: str) -> int:
    """The status a role should get; `statuses` may give "*" as the default."""
    return statuses.get(role, statuses.get("*"))
