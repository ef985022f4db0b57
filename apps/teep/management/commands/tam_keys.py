"""The TAM's public keys, which agents must be provisioned with."""

import json

from django.core.management.base import BaseCommand

from apps.teep.tam_keys import exported_public_keys


class Command(BaseCommand):
    help = "tam_keys export: print the TAM public keys (PEM and COSE_Key hex) with their kids."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["export"])
        parser.add_argument("--json", dest="as_json", action="store_true", help="one JSON document")

    def handle(self, *args, action, as_json=False, **options):
        exported = exported_public_keys()
        if as_json:
            self.stdout.write(json.dumps({"tam_keys": exported}, indent=2))
            return
        for entry in exported:
            self.stdout.write(f"# kid {entry['kid']} (COSE algorithms {entry['algorithms']})")
            self.stdout.write(entry["pem"].rstrip())
            self.stdout.write(f"COSE_Key: {entry['cose_key']}\n")

