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
    assert out["cose"]["verified"] is True
    assert out["message"]["type"] == "success" and out["message"]["msg"] == "ok"

    done = run_inspect("--numbering", "draft-25", "--key", tmp_path / "other.pem", "-", stdin=signed)
    assert json.loads(done.stdout)["cose"]["verified"] is False


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
