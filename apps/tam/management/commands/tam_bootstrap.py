"""First start of the embedded default: development TAM keys and an operator account."""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from apps.audit.services import record_system_event
from apps.teep.tam_keys import tam_keys


class Command(BaseCommand):
    help = "Create development TAM keys (if configured) and the first operator account."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="operator")

    def handle(self, *args, username, **options):
        keys = tam_keys()
        for key in keys.keys:
            self.stdout.write(f"TAM key kid={key.kid.hex()} algorithms={list(key.algorithms)}")
        User = get_user_model()
        with transaction.atomic():
            if User.objects.filter(username=username).exists():
                self.stdout.write(f"Account {username!r} exists; its password is not shown again.")
                return
            password = secrets.token_urlsafe(18)
            user = User.objects.create_superuser(username=username, email="", password=password)
            record_system_event(action="account.bootstrap", obj=user, detail={"username": username})
        self.stdout.write(self.style.SUCCESS(
            f"Created account {username!r} with password: {password}\n"
            "This password is shown once. Log in at http://127.0.0.1:8000/admin/"
        ))
