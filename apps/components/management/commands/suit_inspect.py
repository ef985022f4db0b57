"""Decode a SUIT envelope or a SUIT report (binary or hex; `-` = stdin) to JSON on stdout.

With --key (PEM or COSE_Key of the signer) the JSON also says whether the signature verifies
with it: "signature": "valid" / "invalid" (with "signature-problem") / "unsigned", and
"key-kid", the key's RFC 9679 thumbprint. An envelope's check includes its manifest digest.
An invalid signature is a finding, not an input error: exit status 0.

Invalid input: one line on stderr naming the problem, exit status 1, no traceback.
"""

import json
import sys

from django.core.management.base import BaseCommand

from apps.components.forms import decode_binary_or_hex
from apps.teep.wire import suit
from apps.teep.wire.errors import CoseError, SuitError
from apps.teep.wire.keys import load_public_key

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
        parser.add_argument(
            "--key",
            metavar="PEM",
            help="the signer's public key (PEM or COSE_Key): say whether the signature verifies",
        )

    def handle(self, *args, file, kind, key=None, **options):
        public_key = self._load_key(key) if key else None
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
        if public_key is not None:
            decoded.update(_signature_check(decoded, data, public_key))
        self.stdout.write(json.dumps(decoded, indent=2, ensure_ascii=False))

    def _load_key(self, path: str):
        try:
            with open(path, "rb") as handle:
                return load_public_key(handle.read(MAX_INPUT_BYTES))
        except OSError as exc:
            self._fail(f"cannot read {path}: {exc.strerror or exc}")
        except CoseError as exc:
            self._fail(f"{path}: {exc}")

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


def _signature_check(decoded: dict, data: bytes, key) -> dict:
    """"signature": valid / invalid / unsigned, for the envelope or report just decoded."""
    check = {"key-kid": key.kid.hex()}
    envelope = decoded.get("suit-envelope")
    if envelope is not None and not envelope["authentication"]:
        return {**check, "signature": "unsigned"}  # the wrapper holds only the digest
    if envelope is None and decoded["suit-report"]["signature"] == "unsigned":
        return {**check, "signature": "unsigned"}  # a bare or only encrypted report
    try:
        if envelope is not None:
            suit.verify_envelope(data, [key])
        else:
            suit.verify_report(data, [key])
    except SuitError as exc:
        return {**check, "signature": "invalid", "signature-problem": str(exc)}
    return {**check, "signature": "valid"}
