"""Create a user holding a role, without questions: the password is generated and printed once
(or read from a file, `-` for standard input)."""

import secrets
import sys

from django.core.management.base import BaseCommand, CommandError

from apps.accounts import roles, services


class Command(BaseCommand):
    help = (
        "Create a staff user holding ROLE (viewer, operator, security officer, administrator); "
        "prints a generated password once unless --password-file is given."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=list(roles.ROLES))
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--password-file",
            metavar="FILE",
            help="read the password from FILE (first line; - for standard input)",
        )

    def handle(self, *args, username, role, email, password_file, **options):
        generated = password_file is None
        password = secrets.token_urlsafe(18) if generated else _read_password(password_file)
        try:
            services.create_user(
                username=username, role=role, password=password, email=email, actor=None
            )
        except services.AccountError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Created user {username!r} ({role}).")
        if generated:
            self.stdout.write(f"Password (shown once): {password}")
        if role in roles.SECOND_FACTOR_REQUIRED:
            self.stdout.write("At the first login the user enrols an authenticator app (TOTP).")


def _read_password(path: str) -> str:
    try:
        if path == "-":
            text = sys.stdin.readline()
        else:
            with open(path, encoding="utf-8") as handle:
                text = handle.readline()
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
    password = text.rstrip("\r\n")
    if not password:
        raise CommandError(f"{path}: no password on the first line")
    return password
