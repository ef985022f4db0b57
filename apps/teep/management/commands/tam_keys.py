"""The TAM's public keys, which agents must be provisioned with.

`tam_keys export > FILE` writes nothing but the keys to standard output; any problem is one
line on standard error and exit status 1 (so `tam_keys export > FILE && next-step` stops).
"""

import json

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from apps.teep.tam_keys import exported_public_keys


class Command(BaseCommand):
    help = "tam_keys export: print the TAM public keys (PEM and COSE_Key hex) with their kids."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["export"])
        parser.add_argument("--json", dest="as_json", action="store_true", help="one JSON document")

    def handle(self, *args, action, as_json=False, **options):
        try:
            exported = exported_public_keys()
        except (ImproperlyConfigured, OSError, ValueError) as exc:
            raise CommandError(" ".join(str(exc).split())) from None
        if as_json:
            self.stdout.write(json.dumps({"tam_keys": exported}, indent=2))
            return
        for entry in exported:
            self.stdout.write(f"# kid {entry['kid']} (COSE algorithms {entry['algorithms']})")
            self.stdout.write(entry["pem"].rstrip())
            self.stdout.write(f"COSE_Key: {entry['cose_key']}\n")
