from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from apps.api import services


class Command(BaseCommand):
    help = "Create an API token for USER and print it once (only its SHA-256 is stored)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="what the token is for")

    def handle(self, *args, username, name, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user {username!r}")
        if not user.is_active:
            raise CommandError(f"user {username!r} is inactive")
        token, raw = services.create_token(user, name=name)
        self.stderr.write(f"Token {token.prefix}… for {username}: shown once, store it now.")
        self.stdout.write(raw)
