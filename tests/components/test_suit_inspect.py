"""manage.py suit_inspect: envelopes and reports to JSON; bad input -> one line, exit 1."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from apps.teep.wire.keys import TeepKey
from apps.teep.wire.suit import SuitDigest, build_report, parse_envelope

# interop-vectors/README.md: the TC signer / SUIT trust anchor.
TC_SIGNER_KID = "ca9e35f23b2b525fb4fc83f512b0dcac4ac29e457e873a5d6a7313f71690b33c"

REPO = Path(__file__).resolve().parents[2]


def inspect(*args, stdin: bytes | None = None):
    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    old_stdin = sys.stdin
    if stdin is not None:
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
    try:
        call_command("suit_inspect", *args, stdout=stdout, stderr=stderr)
    except SystemExit as exc:
        code = exc.code
    finally:
        sys.stdin = old_stdin
    return code, stdout.getvalue(), stderr.getvalue()


def test_hex_envelope_decodes_to_json(vectors_dir):
    code, out, err = inspect(str(vectors_dir / "teep/suit_uri.hex"))
    assert code == 0 and err == ""
    manifest = json.loads(out)["suit-envelope"]["manifest"]
    assert manifest["sequence_number"] == 3
    assert manifest["components"] == [
        ["TEEP-Device", "SecureFS", "h'8d82573a926d4754935332dc29997f74'", "ta"]
    ]
    install = manifest["command_sequences"]["install"]
    assert (
        install[0]["argument"]["uri"]
        == "https://example.org/8d82573a-926d-4754-9353-32dc29997f74.ta"
    )


def test_binary_envelope_from_stdin(vectors_dir):
    data = bytes.fromhex((vectors_dir / "teep/suit_integrated.hex").read_text().strip())
    code, out, _ = inspect("-", stdin=data)
    assert code == 0
    assert json.loads(out)["suit-envelope"]["integrated_payloads"]["#tc"]["size"] == 20


def test_report_decodes_to_json(vectors_dir, tmp_path):
    envelope = parse_envelope(
        bytes.fromhex((vectors_dir / "teep/suit_uri.hex").read_text().strip())
    )
    report = build_report(
        manifest_digest=envelope.digest, manifest_uri="https://tam.example/m", nonce=b"n" * 8
    )
    path = tmp_path / "report.cbor"
    path.write_bytes(report)
    code, out, err = inspect(str(path))
    assert code == 0, err
    decoded = json.loads(out)["suit-report"]
    assert envelope.digest.value.hex() in json.dumps(decoded)


@pytest.mark.parametrize("content", [b"\x00\x01garbage", b"deadbeef", b"   \n"])
def test_garbage_is_one_line_and_exit_1(tmp_path, content):
    path = tmp_path / "junk.bin"
    path.write_bytes(content)
    code, out, err = inspect(str(path))
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and "junk.bin" in err


def test_missing_file_is_one_line_and_exit_1(tmp_path):
    code, _, err = inspect(str(tmp_path / "absent.suit"))
    assert code == 1 and "cannot read" in err and len(err.strip().splitlines()) == 1


def test_real_process_prints_no_traceback(tmp_path, vectors_dir):
    junk = tmp_path / "junk.suit"
    junk.write_bytes(b"\xa2\x02\x40\x03\x40")  # an envelope-shaped map with empty members
    # A development environment (settings refuse to start without secrets unless DEBUG).
    env = {
        **os.environ,
        "DEBUG": "true",
        "DATA_DIR": os.environ.get("DATA_DIR", str(tmp_path / "data")),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "suit_inspect", str(junk)],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 1
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0]
    assert lines[0].startswith(f"{junk}: ")

    ok = subprocess.run(
        [sys.executable, "manage.py", "suit_inspect", str(vectors_dir / "teep/suit_uri.hex")],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["suit-envelope"]["manifest"]["sequence_number"] == 3


# --- --key: does the signature verify with this key? --------------------------------------------


@pytest.fixture
def trust_anchor_pem(shared_dir, tmp_path):
    """The TC signer key that signs the libcsuit / AttesTAM envelopes (kid ca9e35f2...)."""
    path = tmp_path / "signer.pem"
    path.write_bytes(
        (shared_dir / "interop-vectors/AttesTAM/doc/examples/developer_priv.pem").read_bytes()
    )
    return path


def test_key_says_an_envelope_signature_is_valid_with_the_keys_kid(shared_dir, trust_anchor_pem):
    envelope = shared_dir / "interop-vectors/AttesTAM/doc/examples/text.1.envelope.cbor"
    code, out, err = inspect(str(envelope), "--key", str(trust_anchor_pem))
    assert code == 0, err
    decoded = json.loads(out)
    assert decoded["signature"] == "valid"
    assert decoded["key-kid"] == TC_SIGNER_KID
    assert decoded["suit-envelope"]["authentication"][0]["kid"] == TC_SIGNER_KID


def test_key_says_invalid_for_another_key(shared_dir, tmp_path):
    other = tmp_path / "other.pem"
    key = TeepKey.generate("p256")
    other.write_bytes(key.public_pem())
    envelope = shared_dir / "interop-vectors/AttesTAM/doc/examples/text.1.envelope.cbor"
    code, out, _ = inspect(str(envelope), "--key", str(other))
    assert code == 0
    decoded = json.loads(out)
    assert (decoded["signature"], decoded["key-kid"]) == ("invalid", key.kid.hex())
    assert "does not verify" in decoded["signature-problem"]


def test_key_on_an_unsigned_envelope_says_unsigned(shared_dir, trust_anchor_pem):
    (path,) = (shared_dir / "interop-vectors/dthaler-teep/tam/manifests/required").glob("*.cbor")
    code, out, _ = inspect(str(path), "--key", str(trust_anchor_pem))
    assert code == 0 and json.loads(out)["signature"] == "unsigned"


def test_key_verifies_a_signed_report(tmp_path):
    agent = TeepKey.generate("p256")
    (tmp_path / "agent.pem").write_bytes(agent.public_pem())
    (tmp_path / "other.pem").write_bytes(TeepKey.generate("p256").public_pem())
    report = build_report(
        manifest_digest=SuitDigest.sha256(b"manifest"), nonce=b"n" * 8, signing_key=agent
    )
    (tmp_path / "report.cbor").write_bytes(report)

    code, out, _ = inspect(str(tmp_path / "report.cbor"), "--key", str(tmp_path / "agent.pem"))
    assert code == 0
    decoded = json.loads(out)
    assert (decoded["signature"], decoded["key-kid"]) == ("valid", agent.kid.hex())
    assert decoded["suit-report"]["kid"] == agent.kid.hex()

    code, out, _ = inspect(str(tmp_path / "report.cbor"), "--key", str(tmp_path / "other.pem"))
    assert json.loads(out)["signature"] == "invalid"

    (tmp_path / "bare.cbor").write_bytes(build_report(manifest_digest=SuitDigest.sha256(b"m")))
    code, out, _ = inspect(str(tmp_path / "bare.cbor"), "--key", str(tmp_path / "agent.pem"))
    assert json.loads(out)["signature"] == "unsigned"


def test_unreadable_key_is_one_line_and_exit_1(tmp_path, vectors_dir):
    (tmp_path / "junk.pem").write_bytes(b"not a key")
    vector = str(vectors_dir / "teep/suit_uri.hex")
    code, out, err = inspect(vector, "--key", str(tmp_path / "junk.pem"))
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
