"""Roles are groups whose permissions come from apps/accounts/roles.py only."""

from io import StringIO

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command

from apps.accounts import roles
from apps.accounts.services import sync_roles
from tests.accounts.helpers import make_user

pytestmark = pytest.mark.django_db


def perms_of(role):
    return {
        f"{p.content_type.app_label}.{p.codename}"
        for p in Group.objects.get(name=role).permissions.select_related("content_type")
    }


def test_migrate_created_every_role_with_every_listed_permission():
    assert set(Group.objects.values_list("name", flat=True)) >= set(roles.ROLES)
    assert sync_roles().unmatched == []  # a typo in roles.py would match nothing


def test_sync_is_idempotent_and_undoes_hand_edits():
    before = {role: perms_of(role) for role in roles.ROLES}
    group = Group.objects.get(name=roles.VIEWER)
    group.permissions.add(Permission.objects.get(codename="add_device"))
    Group.objects.get(name=roles.OPERATOR).permissions.clear()
    sync_roles()
    sync_roles()
    assert {role: perms_of(role) for role in roles.ROLES} == before


def test_viewer_reads_everything_including_the_audit_trail_and_changes_nothing():
    viewer = perms_of(roles.VIEWER)
    assert {
        "audit.view_auditevent",
        "devices.view_device",
        "components.view_componentversion",
        "policies.view_queuedaction",
        "attestation.view_attestationkey",
    } <= viewer
    assert all(p.split(".")[1].startswith("view_") for p in viewer)


def test_operator_runs_the_catalogue_devices_and_policies_but_decides_no_trust():
    operator = perms_of(roles.OPERATOR)
    assert {
        "components.add_componentversion",
        "components.change_componentversion",
        "devices.add_device",
        "policies.add_policy",
        "policies.change_queuedaction",
    } <= operator
    assert not operator & {
        "components.mark_compromised",
        "components.add_tcsigner",
        "attestation.add_attestationkey",
        "auth.change_user",
        "components.delete_componentversion",
    }


def test_security_officer_adds_compromise_signers_and_attestation_keys():
    officer = perms_of(roles.SECURITY_OFFICER)
    assert {
        "components.mark_compromised",
        "components.add_tcsigner",
        "components.add_signerkey",
        "attestation.add_attestationkey",
        "attestation.change_referencevalue",
        "policies.add_compromiseresponse",
    } <= officer
    assert perms_of(roles.OPERATOR) <= officer
    assert "auth.change_user" not in officer


def test_administrator_has_everything_but_rewriting_the_audit_trail():
    admin = perms_of(roles.ADMINISTRATOR)
    assert {
        "auth.add_user",
        "auth.change_group",
        "api.add_apitoken",
        "otp_totp.delete_totpdevice",
        "components.mark_compromised",
    } <= admin
    assert not admin & set(roles.NEVER_GRANTED)


def test_a_role_works_through_the_users_group():
    user = make_user(roles.OPERATOR)
    assert user.is_staff
    assert user.has_perm("components.add_componentversion")
    assert not user.has_perm("components.mark_compromised")


def test_sync_roles_command_reports_each_role():
    out = StringIO()
    call_command("sync_roles", "--no-input", stdout=out)
    for role in roles.ROLES:
        assert f"{role}: " in out.getvalue()
    assert "Roles are in sync." in out.getvalue()
