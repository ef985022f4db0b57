"""`manage.py teep_inspect`: JSON with the draft's field names, exit 1 and one line on bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from apps.teep.wire import cose
from apps.teep.wire.keys import TeepKey
from apps.teep.wire.messages import Success, encode
from apps.teep.wire.numbering import PRE_26
from tests.interop_vectors import (
    TAMPROTO_ENVELOPE,
    attestam_envelope,
    attestam_tam_key,
    attestam_update,
)

ROOT = Path(__file__).resolve().parents[2]


def run_inspect(*args, stdin: bytes | None = None):
    env = {**os.environ, "DEBUG": "true"}
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "teep_inspect", *map(str, args)],
        input=stdin, capture_output=True, env=env, cwd=ROOT, timeout=60,
    )


def test_hex_vector_prints_the_message_with_draft_field_names(vectors_dir):
    done = run_inspect(vectors_dir / "teep" / "teep_error.hex")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["cose"] is None
    assert out["message"] == {
        "type": "error",
        "numbering": "draft-26",
        "token": "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
        "err-msg": "disk-full",
        "err-code": 11,
        "err-name": "ERR_MANIFEST_PROCESSING_FAILED",
    }


def test_signed_message_from_stdin_reports_cose_layer_and_verification(tmp_path):
    key = TeepKey.generate("ed25519")
    (tmp_path / "agent.pem").write_bytes(key.public_pem())
    other = TeepKey.generate("p256")
    (tmp_path / "other.pem").write_bytes(other.public_pem())
    signed = cose.sign1(encode(Success(token=b"\x01" * 16, msg="ok"), PRE_26), key, -19)

    done = run_inspect("--numbering", "draft-25", "--key", tmp_path / "agent.pem", "-", stdin=signed)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["cose"]["structure"] == "COSE_Sign1" and out["cose"]["tagged"] is True
    assert out["cose"]["signatures"] == [{"alg": -19, "alg-name": "Ed25519", "kid": key.kid.hex()}]
    assert (out["cose"]["signature"], out["cose"]["key-kid"]) == ("valid", key.kid.hex())
    assert out["message"]["type"] == "success" and out["message"]["msg"] == "ok"

    done = run_inspect("--numbering", "draft-25", "--key", tmp_path / "other.pem", "-", stdin=signed)
    out = json.loads(done.stdout)
    assert (out["cose"]["signature"], out["cose"]["key-kid"]) == ("invalid", other.kid.hex())

    done = run_inspect("--numbering", "draft-25", "-", stdin=signed)
    assert json.loads(done.stdout)["cose"]["signature"] == "not checked"


@pytest.mark.parametrize(
    "payload, expected",
    [
        (b"\xff\x00garbage", "invalid input"),
        (b"", "invalid input"),
        (bytes.fromhex("8205a0"), "invalid input"),  # error without err-code
    ],
)
def test_invalid_input_exits_1_with_one_line_and_no_traceback(payload, expected):
    done = run_inspect("-", stdin=payload)
    assert done.returncode == 1
    assert done.stdout == b""
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), done.stderr
    assert b"Traceback" not in done.stderr


def test_wrong_numbering_is_named_not_guessed(vectors_dir):
    done = run_inspect(vectors_dir / "teep" / "pre-26-numbering" / "teep_success.hex")
    assert done.returncode == 1
    # Pre-26 Success is type 5, which is Error in the current numbering: named, not guessed.
    assert b"TEEP payload (draft-26): message: error must be an array of 3" in done.stderr, done.stderr


def test_missing_file_is_one_line():
    done = run_inspect("/nonexistent/message.cbor")
    assert done.returncode == 1 and done.stderr.decode().count("\n") == 1


def test_signature_is_shown_when_the_payload_is_refused(tmp_path):
    # A validly signed pre-26 Error without its err-code: the codec refuses the payload, the
    # COSE layer and the signature's validity are still printed, the decode error beside them.
    key = TeepKey.generate("p256")
    (tmp_path / "agent.pem").write_bytes(key.public_pem())
    signed = cose.sign1(bytes.fromhex("8206a0"), key, -9)

    done = run_inspect(
        "--numbering", "draft-25", "--key", tmp_path / "agent.pem", "-", stdin=signed
    )

    assert done.returncode == 1
    out = json.loads(done.stdout)
    assert out["cose"]["signature"] == "valid" and out["cose"]["key-kid"] == key.kid.hex()
    assert out["message"] is None
    assert out["decode-error"].startswith("TEEP payload (draft-25): message: error must be")
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("invalid input: TEEP payload"), done.stderr


def test_attestam_update_with_tagged_envelopes_is_shown_and_noted(tmp_path):
    (tmp_path / "tam.pem").write_bytes(attestam_tam_key().public_pem())
    tamproto = TAMPROTO_ENVELOPE.read_bytes()  # tagged (107) as stored by tamproto
    update = attestam_update(bytes(range(16)), [attestam_envelope(tagged=True), tamproto])
    (tmp_path / "update.cose").write_bytes(update)

    done = run_inspect(
        "--numbering", "draft-25", "--key", tmp_path / "tam.pem", tmp_path / "update.cose"
    )

    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["cose"]["signature"] == "valid"
    assert out["message"]["type"] == "update"
    first, second = out["message"]["manifest-list"]
    assert first["tagged"] is True and second["tagged"] is True
    assert first["note"] == (
        "SUIT_Envelope_Tagged (107) inside manifest-list; the TEEP CDDL says untagged"
    )
    assert bytes.fromhex(first["envelope"]) == attestam_envelope(tagged=True)
    assert bytes.fromhex(second["envelope"]) == tamproto


def test_untagged_manifest_list_entries_carry_no_note():
    update = attestam_update(bytes(16), [attestam_envelope(tagged=False)])
    done = run_inspect("--numbering", "draft-25", "-", stdin=update)
    assert done.returncode == 0, done.stderr
    (entry,) = json.loads(done.stdout)["message"]["manifest-list"]
    assert entry["tagged"] is False and "note" not in entry
