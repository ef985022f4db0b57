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
    """The COSE layer and the TEEP message as JSON.

    The COSE layer is shown whenever the bytes parse as COSE, with "signature": "valid",
    "invalid" or "not checked" (no --key), even when the payload is then refused: its decode
    error goes in "decode-error" and "message" is null. Bytes that are not COSE are tried as a
    bare TEEP payload; if that fails too, WireError.
    """
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
    layer = cose_to_json(signed)
    layer["signature"] = "not checked"
    if key is not None:
        layer["key-kid"] = key.kid.hex()
        try:
            cose.verify(signed, key)
            layer["signature"] = "valid"
        except WireError as exc:
            layer["signature"] = "invalid"
            layer["signature-problem"] = str(exc)
    result = {"cose": layer, "message": None}
    if signed.payload is None:
        result["decode-error"] = "COSE payload is detached: nothing to decode"
        return result
    try:
        message = messages.decode(signed.payload, numbering)
    except WireError as exc:
        result["decode-error"] = f"TEEP payload ({numbering.name}): {exc}"
        return result
    result["message"] = message_to_json(message, numbering)
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
        if "decode-error" in result:
            # The layers are printed above; the status still says the message is not acceptable.
            self._fail(f"invalid input: {result['decode-error']}")

    def _fail(self, line: str):
        self.stderr.write(line.replace("\n", " "))
        sys.exit(1)
