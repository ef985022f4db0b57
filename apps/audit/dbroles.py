"""The production database roles (README "Deployment"): an owner role that owns every table
and runs `migrate`, and an app role the portal runs as, which may read and write the data but
only append to the audit trail and never alter a table. The owner runs `manage.py
grant_app_role ROLE` after every `migrate` (idempotent)."""

from __future__ import annotations

from psycopg import sql

from apps.audit.models import AuditEvent

# What the app role may not do to the audit table: it appends (INSERT) and reads (SELECT).
AUDIT_WITHHELD = ("UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


def app_role_statements(role: str, database: str) -> list[sql.Composable]:
    role_id = sql.Identifier(role)
    audit = sql.Identifier(AuditEvent._meta.db_table)
    withheld = sql.SQL(", ").join(sql.SQL(p) for p in AUDIT_WITHHELD)
    return [
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), role_id),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(role_id),
        sql.SQL("REVOKE CREATE ON SCHEMA public FROM {}").format(role_id),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(
            role_id
        ),
        sql.SQL("GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {}").format(
            role_id
        ),
        sql.SQL("REVOKE {} ON {} FROM {}").format(withheld, audit, role_id),
        # Tables and sequences the owner creates in later migrations.
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
            "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {}"
        ).format(role_id),
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
            "GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {}"
        ).format(role_id),
    ]


def role_problem(cursor, role: str) -> str | None:
    """Why `role` cannot be the app role (it must not own the audit table, nor be able to
    act as its owner, nor be a superuser), or None."""
    cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [role])
    row = cursor.fetchone()
    if row is None:
        return f"role {role!r} does not exist: CREATE ROLE {role} LOGIN PASSWORD '…' first"
    if row[0]:
        return f"role {role!r} is a superuser: superusers bypass every privilege"
    cursor.execute(
        "SELECT pg_has_role(%s, tableowner, 'MEMBER') FROM pg_tables WHERE tablename = %s",
        [role, AuditEvent._meta.db_table],
    )
    owner_row = cursor.fetchone()
    if owner_row is None:
        return "the audit table does not exist yet: run migrate (as the owner role) first"
    if owner_row[0]:
        return f"role {role!r} owns the audit table (or is a member of its owner role)"
    return None
