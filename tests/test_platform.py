"""What the deployment promises: the database CI claims to test on, the append-only audit."""

import os

import pytest
from django.db import connection, transaction

from apps.audit.models import AuditEvent, AuditTrailIsAppendOnly
from apps.audit.services import record_exchange


@pytest.mark.skipif(os.environ.get("CI") != "true", reason="only CI promises PostgreSQL")
@pytest.mark.django_db
def test_ci_really_runs_on_postgresql():
    assert connection.vendor == "postgresql", "CI=true but the suite ran on " + connection.vendor
    with connection.cursor() as cursor:
        cursor.execute("select version()")
        assert cursor.fetchone()[0].startswith("PostgreSQL")


@pytest.mark.django_db
def test_audit_event_cannot_be_changed_or_deleted_through_the_orm():
    event = AuditEvent.objects.get(pk=record_exchange(action="teep.query-request", outcome="ok", device_kid="ab" * 32))
    event.outcome = "forged"
    with pytest.raises(AuditTrailIsAppendOnly):
        event.save()
    with pytest.raises(AuditTrailIsAppendOnly):
        event.delete()
    with pytest.raises(AuditTrailIsAppendOnly):
        AuditEvent.objects.filter(pk=event.pk).update(outcome="forged")
    with pytest.raises(AuditTrailIsAppendOnly):
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.get(pk=event.pk).outcome == "ok"


@pytest.mark.django_db
def test_postgresql_trigger_refuses_update_and_delete_in_sql():
    if connection.vendor != "postgresql":
        pytest.skip("the trigger exists on PostgreSQL only; SQLite keeps the model guard")
    event = AuditEvent.objects.get(pk=record_exchange(action="teep.success", outcome="ok"))
    for statement in (
        "UPDATE audit_auditevent SET outcome = 'forged' WHERE id = %s",
        "DELETE FROM audit_auditevent WHERE id = %s",
    ):
        with pytest.raises(Exception, match="append-only"):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(statement, [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).outcome == "ok"
