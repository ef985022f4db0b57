"""On PostgreSQL, TRUNCATE of the audit table is refused too (0002 refuses UPDATE and DELETE).

A statement-level BEFORE TRUNCATE trigger with the same function: nobody, the owner included,
empties the trail by accident. The owner could still disable the trigger (ALTER TABLE needs
ownership), which is why production runs the portal as a role that does not own the table
(README "Deployment", `manage.py grant_app_role`). Test flushes of the suite disable the
trigger around their TRUNCATE as the owner (tests/conftest.py).
"""

from django.db import migrations

CREATE = """
CREATE TRIGGER audit_auditevent_no_truncate
    BEFORE TRUNCATE ON audit_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION audit_auditevent_append_only();
"""

DROP = "DROP TRIGGER IF EXISTS audit_auditevent_no_truncate ON audit_auditevent;"


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_append_only_trigger")]
    operations = [migrations.RunPython(create_trigger, drop_trigger)]
