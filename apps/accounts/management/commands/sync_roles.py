from django.core.management.base import BaseCommand

from apps.accounts import roles
from apps.accounts.services import sync_roles


class Command(BaseCommand):
    help = "Create or update the role groups from apps/accounts/roles.py (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--no-input",
            "--noinput",
            action="store_true",
            dest="no_input",
            help="accepted for symmetry; the command never asks anything",
        )

    def handle(self, *args, **options):
        result = sync_roles()
        for name in roles.ROLES:
            self.stdout.write(f"{name}: {result.granted[name]} permissions")
        for entry in result.unmatched:
            self.stdout.write(
                self.style.WARNING(f"matched no permission (app not installed?): {entry}")
            )
        self.stdout.write(self.style.SUCCESS("Roles are in sync."))
