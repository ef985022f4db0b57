"""manage.py grant_app_role ROLE: give the portal's app role its privileges (PostgreSQL).

Run as the owner role (the one that ran `migrate`), after every migrate; idempotent. The app
role may read and write the portal's tables but only INSERT and SELECT on the audit trail,
and, not owning any table, can neither disable nor drop the trigger that guards it.
`--print` shows the statements instead (for a DBA to review and run).
"""

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from apps.audit.dbroles import app_role_statements, role_problem


class Command(BaseCommand):
    help = "Grant the portal's app database role its privileges (run as the owner role)."

    def add_arguments(self, parser):
        parser.add_argument("role", help="the role the portal connects as (DATABASE_URL)")
        parser.add_argument("--print", action="store_true", help="print the SQL, run nothing")

    def handle(self, *args, role, **options):
        if connection.vendor != "postgresql":
            raise CommandError("database roles are a PostgreSQL setup; this database is "
                               f"{connection.vendor}")
        database = connection.settings_dict["NAME"]
        statements = app_role_statements(role, database)
        with connection.cursor() as cursor:
            if options["print"]:
                for statement in statements:
                    self.stdout.write(statement.as_string(cursor.connection) + ";")
                return
            problem = role_problem(cursor, role)
            if problem:
                raise CommandError(problem)
            with transaction.atomic():
                for statement in statements:
                    cursor.execute(statement)
        if options["verbosity"]:
            self.stdout.write(f"{role}: read/write on the portal's tables, append-only on the "
                              "audit trail")
