"""Roles, and the TOTP second factor: enrolment, backup codes and verification.

The OTP session state is django-otp's (`django_otp.login` marks the session verified;
`request.user.is_verified()` reads it). Backup codes are django-otp static tokens (one
StaticDevice per user holding single-use codes). Enrolment, new backup codes, a backup code
used and failed codes leave audit rows.
"""

from __future__ import annotations

import fnmatch
import io
from dataclasses import dataclass, field

import django_otp
from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import DEFAULT_DB_ALIAS, transaction
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts import roles
from apps.audit.services import record_operator_action

TOTP_DEVICE_NAME = "authenticator app"
BACKUP_CODES_DEVICE_NAME = "backup codes"
BACKUP_CODE_COUNT = 10


class AccountError(Exception):
    pass


# --- roles ----------------------------------------------------------------------------------


@dataclass
class RoleSync:
    granted: dict[str, int] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)


def resolve_role_permissions(entries, all_permissions) -> tuple[list, list[str]]:
    """(permissions matching the role's entries, entries that matched nothing)."""
    keyed = {f"{p.content_type.app_label}.{p.codename}": p for p in all_permissions}
    chosen, unmatched = {}, []
    for entry in entries:
        hits = [name for name in keyed if fnmatch.fnmatchcase(name, entry)]
        if not hits:
            unmatched.append(entry)
        chosen.update((name, keyed[name]) for name in hits if name not in roles.NEVER_GRANTED)
    return list(chosen.values()), unmatched


def sync_roles(*, apps=global_apps, using: str = DEFAULT_DB_ALIAS) -> RoleSync:
    """Make each role's group hold exactly the permissions roles.ROLES gives it. Idempotent.

    `apps` is the historical registry inside a migration or post_migrate handler."""
    # Permissions are normally created after migrate; the roles need them now.
    for app_config in global_apps.get_app_configs():
        create_permissions(app_config, verbosity=0, using=using, apps=apps)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    all_permissions = list(Permission.objects.using(using).select_related("content_type"))
    result = RoleSync()
    with transaction.atomic(using=using):
        for name, entries in roles.ROLES.items():
            permissions, unmatched = resolve_role_permissions(entries, all_permissions)
            group, _ = Group.objects.using(using).get_or_create(name=name)
            group.permissions.set(permissions)
            result.granted[name] = len(permissions)
            result.unmatched += [f"{name}: {entry}" for entry in unmatched]
    return result


@transaction.atomic(durable=True)
def assign_role(user, role: str, *, acting_user, request=None) -> None:
    """Put the user in the role's group; roles work in the admin, so the user becomes staff."""
    _join_role(user, role)
    record_operator_action(
        actor=acting_user,
        action="account.role-assigned",
        obj=user,
        after={"role": role},
        request=request,
    )


def _join_role(user, role: str) -> None:
    from django.contrib.auth.models import Group

    if role not in roles.ROLES:
        raise AccountError(f"unknown role {role!r}; roles: {', '.join(roles.ROLES)}")
    group, _ = Group.objects.get_or_create(name=role)
    user.groups.add(group)
    if not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])


@transaction.atomic(durable=True)
def create_user(
    *, username: str, role: str, password: str, email: str = "", actor, request=None
):
    """A staff user holding `role`, with a password checked by AUTH_PASSWORD_VALIDATORS."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    User = get_user_model()
    if role not in roles.ROLES:
        raise AccountError(f"unknown role {role!r}; roles: {', '.join(roles.ROLES)}")
    if User.objects.filter(username=username).exists():
        raise AccountError(f"a user {username!r} exists")
    user = User(username=username, email=email)
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise AccountError(" ".join(exc.messages)) from None
    user.set_password(password)
    user.save()
    _join_role(user, role)
    record_operator_action(
        actor=actor,
        action="account.create",
        obj=user,
        after={"username": username, "role": role, "email": email},
        request=request,
    )
    return user


# --- deactivation (DESIGN.md decision 12) ---------------------------------------------------


def audit_history_counts(users) -> dict[int, int]:
    """{user id: audit rows naming the user as actor} for those of `users` that have any."""
    from django.db.models import Count

    from apps.audit.models import AuditEvent

    rows = (
        AuditEvent.objects.filter(actor__in=users)
        .order_by()
        .values("actor")
        .annotate(n=Count("id"))
        .values_list("actor", "n")
    )
    return dict(rows)


@transaction.atomic(durable=True)
def deactivate_user(user, *, actor, request=None) -> bool:
    """Deactivate an account instead of deleting it: the audit trail keeps naming the user, who
    can no longer log in or use an API token. False when it was already inactive."""
    if actor is not None and user.pk == actor.pk:
        raise AccountError("you cannot deactivate your own account")
    locked = type(user).objects.select_for_update().get(pk=user.pk)
    if not locked.is_active:
        return False
    locked.is_active = False
    locked.save(update_fields=["is_active"])
    record_operator_action(
        actor=actor,
        action="account.deactivated",
        obj=locked,
        before={"is_active": True},
        after={"is_active": False},
        request=request,
    )
    return True


def role_names(user) -> set[str]:
    return set(user.groups.values_list("name", flat=True))


# --- second factor -----------------------------------------------------------------------


def second_factor_required(user) -> bool:
    """Superusers and members of the roles in roles.SECOND_FACTOR_REQUIRED."""
    if not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    return user.groups.filter(name__in=roles.SECOND_FACTOR_REQUIRED).exists()


def has_confirmed_device(user) -> bool:
    return django_otp.user_has_device(user, confirmed=True)


def pending_totp_device(user) -> TOTPDevice:
    """The unconfirmed TOTP device being enrolled (one per user, kept across page loads)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=TOTP_DEVICE_NAME, confirmed=False)
    return device


@transaction.atomic(durable=True)
def confirm_totp_enrolment(request, token: str) -> TOTPDevice | None:
    """Confirm the pending device with a code from the app; the session becomes verified."""
    user = request.user
    device = (
        TOTPDevice.objects.select_for_update()
        .filter(user=user, confirmed=False)
        .order_by("pk")
        .first()
    )
    if device is None or not device.verify_token(token):
        record_operator_action(
            actor=user,
            action="account.totp-enrol",
            obj=user,
            outcome="rejected",
            reason="wrong code",
            request=request,
        )
        return None
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    # One authenticator app per user: a new one replaces the old (a lost phone stops working).
    replaced = list(TOTPDevice.objects.filter(user=user, confirmed=True).exclude(pk=device.pk))
    TOTPDevice.objects.filter(pk__in=[old.pk for old in replaced]).delete()
    record_operator_action(
        actor=user,
        action="account.totp-enrol",
        obj=user,
        before={"devices": [old.persistent_id for old in replaced]} if replaced else None,
        after={"device": device.persistent_id},
        request=request,
    )
    django_otp.login(request, device)
    return device


def has_totp_device(user) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def backup_codes_left(user) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


@transaction.atomic(durable=True)
def generate_backup_codes(user, *, actor, request=None) -> list[str]:
    """A new set of single-use backup codes (the previous set stops working), to be shown
    once. Each one passes the second factor once, e.g. after losing the phone."""
    device, _ = StaticDevice.objects.select_for_update().get_or_create(
        user=user, name=BACKUP_CODES_DEVICE_NAME, defaults={"confirmed": True}
    )
    previous = device.token_set.count()
    device.token_set.all().delete()
    codes: set[str] = set()
    while len(codes) < BACKUP_CODE_COUNT:
        codes.add(StaticToken.random_token())
    StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    record_operator_action(
        actor=actor,
        action="account.backup-codes",
        obj=user,
        before={"codes_left": previous},
        after={"codes_left": len(codes)},
        request=request,
    )
    return sorted(codes)


@transaction.atomic(durable=True)
def verify_second_factor(request, token: str):
    """Check a code (the authenticator app's, or a backup code, which is consumed) against the
    user's confirmed devices (throttled per device by django-otp)."""
    device = django_otp.match_token(request.user, token)
    if device is None:
        record_operator_action(
            actor=request.user,
            action="account.totp-verify",
            obj=request.user,
            outcome="rejected",
            reason="wrong code",
            request=request,
        )
        return None
    if isinstance(device, StaticDevice):
        record_operator_action(
            actor=request.user,
            action="account.backup-code-used",
            obj=request.user,
            after={"codes_left": device.token_set.count()},
            request=request,
        )
    django_otp.login(request, device)
    return device


def otpauth_qr_svg(uri: str) -> str | None:
    """The otpauth:// URI as an inline SVG QR code, or None without the qrcode package."""
    try:
        import qrcode
        import qrcode.image.svg
    except ImportError:  # optional: the URI alone is enough to enrol
        return None
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue().decode()
