"""Register a pre-provisioned TEEP Agent key and print its key id."""

import sys

from django.core.management.base import BaseCommand, CommandError

from apps.devices.services import DeviceError, register_agent


class Command(BaseCommand):
    help = "Register a pre-provisioned agent public key (PEM or COSE_Key); prints its kid."

    def add_arguments(self, parser):
        parser.add_argument("--public-key", required=True, help="PEM or COSE_Key file, - for stdin")
        parser.add_argument("--name", default="")
        parser.add_argument("--tag", action="append", default=[], help="tag the device (repeatable)")
        parser.add_argument(
            "--kidless", action="store_true",
            help="its agent signs without a kid: such messages are tried with this key"
                 " (README \"Serving older agents\", TEEP_KIDLESS_MAX_CANDIDATES)",
        )

    def handle(self, *args, public_key, name, tag, kidless, **options):
        try:
            data = sys.stdin.buffer.read() if public_key == "-" else open(public_key, "rb").read()
        except OSError as exc:
            raise CommandError(f"cannot read {public_key}: {exc.strerror}") from None
        try:
            device = register_agent(public_key_bytes=data, name=name, tags=tag, accepts_kidless=kidless)
        except DeviceError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(device.kid)
