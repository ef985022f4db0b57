"""Print a TEEP message (COSE-signed or bare payload) as JSON with the draft's field names."""

import binascii
import json
import re
import sys

from django.core.management.base import BaseCommand

from apps.teep.wire import cose, messages
from apps.teep.wire.errors import WireError
from apps.teep.wire.inspect import cose_to_json, message_to_json
from apps.teep.wire.keys import load_public_key
from apps.teep.wire.numbering import NUMBERINGS, numbering_by_name

_HEX_TEXT = re.compile(rb"^[0-9A-Fa-f\s]+$")


def read_input(path: str) -> bytes:
    """Binary CBOR, or the same as hex text (whitespace and '#' comments allowed)."""
    data = sys.stdin.buffer.read() if path == "-" else open(path, "rb").read()
    without_comments = re.sub(rb"#[^\n]*", b"", data)
    if without_comments.strip() and _HEX_TEXT.match(without_comments):
        try:
            return binascii.unhexlify(b"".join(without_comments.split()))
        except binascii.Error as exc:
            raise WireError(f"hex input: {exc}") from None
    return data


def inspect_bytes(data: bytes, numbering, key=None) -> dict:
    try:
        signed = cose.parse(data)
    except WireError as cose_problem:
        # Not COSE: maybe a bare TEEP payload (the draft's Appendix D examples are).
        try:
            message = messages.decode(data, numbering)
        except WireError as teep_problem:
            if _looks_like_teep_payload(data):
                raise WireError(f"TEEP payload ({numbering.name}): {teep_problem}") from None
            raise WireError(f"not a COSE-signed TEEP message: {cose_problem}") from None
        return {"cose": None, "message": message_to_json(message, numbering)}
    result = {"cose": cose_to_json(signed)}
    if key is not None:
        try:
            cose.verify(signed, key)
            result["cose"]["verified"] = True
        except WireError as exc:
            result["cose"]["verified"] = False
            result["cose"]["verification-problem"] = str(exc)
    if signed.payload is None:
        raise WireError("COSE payload is detached: nothing to decode")
    result["message"] = message_to_json(messages.decode(signed.payload, numbering), numbering)
    return result


def _looks_like_teep_payload(data: bytes) -> bool:
    """An array whose first element is an unsigned int (a message type), not a COSE array."""
    return len(data) >= 2 and data[0] in range(0x80, 0x98) and data[1] < 0x18


class Command(BaseCommand):
    help = "Decode a TEEP message (binary or hex; - for stdin) to JSON."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--numbering", default="draft-26", choices=sorted(NUMBERINGS))
        parser.add_argument("--key", help="PEM or COSE_Key of the signer: report whether it verifies")

    def handle(self, *args, file, numbering, key=None, **options):
        try:
            public_key = load_public_key(open(key, "rb").read()) if key else None
            result = inspect_bytes(read_input(file), numbering_by_name(numbering), public_key)
        except OSError as exc:
            self._fail(f"cannot read {exc.filename}: {exc.strerror}")
        except (WireError, ValueError) as exc:
            self._fail(f"invalid input: {exc}")
        self.stdout.write(json.dumps(result, indent=2))

    def _fail(self, line: str):
        self.stderr.write(line.replace("\n", " "))
        sys.exit(1)
