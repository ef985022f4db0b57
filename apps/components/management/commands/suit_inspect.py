"""Decode a SUIT envelope or a SUIT report (binary or hex; `-` = stdin) to JSON on stdout.

Invalid input: one line on stderr naming the problem, exit status 1, no traceback.
"""

import json
import sys

from django.core.management.base import BaseCommand

from apps.components.forms import decode_binary_or_hex
from apps.teep.wire import suit
from apps.teep.wire.errors import SuitError

MAX_INPUT_BYTES = 16 << 20


class Command(BaseCommand):
    help = "Decode a SUIT envelope or SUIT report (CBOR or hex, '-' for stdin) to JSON."
    # A reading tool: it touches neither the database nor the URL configuration.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("file", help="path, or - for standard input")
        parser.add_argument(
            "--as",
            dest="kind",
            choices=["auto", "envelope", "report"],
            default="auto",
            help="what the input holds (default: try an envelope, then a report)",
        )

    def handle(self, *args, file, kind, **options):
        try:
            data = self._read(file)
        except OSError as exc:
            self._fail(f"cannot read {file}: {exc.strerror or exc}")
        if not data.strip():
            self._fail(f"{file}: empty input")
        data = decode_binary_or_hex(data)
        try:
            decoded = self._decode(data, kind)
        except SuitError as exc:
            self._fail(f"{file}: {exc}")
        self.stdout.write(json.dumps(decoded, indent=2, ensure_ascii=False))

    def _read(self, file: str) -> bytes:
        if file == "-":
            return sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)[: MAX_INPUT_BYTES + 1]
        with open(file, "rb") as handle:
            data = handle.read(MAX_INPUT_BYTES + 1)
        if len(data) > MAX_INPUT_BYTES:
            self._fail(f"{file}: larger than {MAX_INPUT_BYTES} bytes")
        return data

    def _decode(self, data: bytes, kind: str):
        if kind == "envelope":
            return {"suit-envelope": suit.envelope_to_json(suit.parse_envelope(data))}
        if kind == "report":
            return {"suit-report": suit.report_to_json(suit.parse_report(data))}
        try:
            return {"suit-envelope": suit.envelope_to_json(suit.parse_envelope(data))}
        except SuitError as envelope_error:
            try:
                return {"suit-report": suit.report_to_json(suit.parse_report(data))}
            except SuitError:
                raise envelope_error from None

    def _fail(self, message: str):
        self.stderr.write(" ".join(message.split()))
        raise SystemExit(1)
