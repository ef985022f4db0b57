"""manage.py create_user: a user holding a role, made without questions (the README's API
user), audited."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from apps.accounts import roles
from apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def create(*args):
    out = StringIO()
    call_command("create_user", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_a_generated_password_is_printed_once_and_works():
    out = create("alice", "--role", roles.OPERATOR)
    password = out.split("Password (shown once): ")[1].split()[0]
    alice = get_user_model().objects.get(username="alice")
    assert alice.check_password(password) and alice.is_staff and not alice.is_superuser
    assert set(alice.groups.values_list("name", flat=True)) == {roles.OPERATOR}
    event = AuditEvent.objects.get(action="account.create")
    assert event.object_id == str(alice.pk) and event.detail["after"]["role"] == roles.OPERATOR
    assert password not in str(event.detail)


def test_a_password_from_a_file_is_checked_by_the_validators(tmp_path):
    weak = tmp_path / "weak"
    weak.write_text("password\n")
    with pytest.raises(CommandError, match="too short|too common"):
        create("bob", "--role", roles.VIEWER, "--password-file", str(weak))
    assert not get_user_model().objects.filter(username="bob").exists()
    good = tmp_path / "good"
    good.write_text("correct horse battery staple\n")
    out = create("bob", "--role", roles.VIEWER, "--password-file", str(good))
    assert "Password" not in out
    assert get_user_model().objects.get(username="bob").check_password(
        "correct horse battery staple"
    )


def test_an_existing_user_is_refused():
    create("alice", "--role", roles.OPERATOR)
    with pytest.raises(CommandError, match="exists"):
        create("alice", "--role", roles.VIEWER)


def test_roles_that_need_a_second_factor_are_told_so():
    assert "authenticator app" in create("carol", "--role", roles.SECURITY_OFFICER)
