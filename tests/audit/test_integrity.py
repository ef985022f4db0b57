"""The audit trail cannot be emptied (issue 13; DESIGN.md "Audit", decision 12).

On PostgreSQL a trigger refuses UPDATE, DELETE and TRUNCATE for everybody, the owner included;
in production the portal runs as an app role that does not own the table and holds only
INSERT and SELECT on it (README "Deployment": `manage.py grant_app_role`), so it can neither
change rows nor disable or drop the trigger. These tests set that role up the documented way
and try every way of emptying the table under it (SET ROLE: the privileges are the role's).
"""

import uuid

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from apps.audit.models import AuditEvent
from apps.audit.services import record_system_event

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="triggers and roles are PostgreSQL's; SQLite keeps the model-level guard only",
    ),
]

TABLE = AuditEvent._meta.db_table
EMPTYING = {
    "update": f"UPDATE {TABLE} SET reason = 'rewritten'",
    "delete": f"DELETE FROM {TABLE}",
    "truncate": f"TRUNCATE {TABLE}",
    "truncate-cascade": f"TRUNCATE {TABLE} CASCADE",
    "disable-trigger": f"ALTER TABLE {TABLE} DISABLE TRIGGER audit_auditevent_append_only",
    "disable-all-triggers": f"ALTER TABLE {TABLE} DISABLE TRIGGER ALL",
    "drop-trigger": f"DROP TRIGGER audit_auditevent_append_only ON {TABLE}",
    "drop-table": f"DROP TABLE {TABLE}",
}


def refused(sql: str) -> str:
    """The database's refusal of `sql` (in a savepoint, so the test goes on); fails if it ran."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    except DatabaseError as exc:
        return str(exc)
    pytest.fail(f"the database accepted: {sql}")


@pytest.fixture
def audit_row():
    event = record_system_event(action="test.fact", reason="an original fact")
    with connection.cursor() as cursor:
        # The insert's deferred foreign-key checks, checked now, as a commit would: TRUNCATE
        # refuses a table with pending trigger events before its own triggers run.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    return event


@pytest.fixture
def app_role(audit_row):
    """A role set up as README "Deployment" says, acting for the rest of the test. Created
    inside the test's transaction, so it disappears with the rollback."""
    role = f"tam_app_{uuid.uuid4().hex[:12]}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {role} NOLOGIN")
    call_command("grant_app_role", role, verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {role}")
    yield role
    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")


@pytest.mark.parametrize("statement", ["update", "delete", "truncate", "truncate-cascade"])
def test_the_trigger_refuses_emptying_the_trail_even_to_the_owner(audit_row, statement):
    assert "append-only" in refused(EMPTYING[statement])
    assert AuditEvent.objects.filter(pk=audit_row.pk, reason="an original fact").exists()


@pytest.mark.parametrize("statement", sorted(EMPTYING))
def test_the_app_role_cannot_change_empty_or_unprotect_the_trail(app_role, audit_row, statement):
    message = refused(EMPTYING[statement])
    assert "permission denied" in message or "must be owner" in message, message
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT reason FROM {TABLE} WHERE id = %s", [audit_row.pk])
        assert cursor.fetchone() == ("an original fact",)


def test_the_app_role_appends_and_reads_the_trail_and_works_on_other_tables(app_role):
    event = record_system_event(action="test.appended")
    assert AuditEvent.objects.filter(pk=event.pk).exists()
    from django.utils import timezone

    from apps.teep.models import TeepToken

    token = TeepToken.objects.create(value=b"t" * 32, kind="query-request", numbering="draft-26",
                                     expires_at=timezone.now())
    TeepToken.objects.filter(pk=token.pk).update(consumed_at=timezone.now())
    TeepToken.objects.filter(pk=token.pk).delete()


def test_grant_app_role_refuses_the_owner_role():
    from django.core.management.base import CommandError

    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        (owner,) = cursor.fetchone()
    with pytest.raises(CommandError, match="owns|superuser"):
        call_command("grant_app_role", owner, verbosity=0)


def test_grant_app_role_prints_its_statements_for_a_dba():
    from io import StringIO

    out = StringIO()
    call_command("grant_app_role", "tam_app", "--print", stdout=out)
    text = out.getvalue()
    withheld = "UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER"
    assert f'REVOKE {withheld} ON "{TABLE}" FROM "tam_app";' in text
    assert "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES" in text
