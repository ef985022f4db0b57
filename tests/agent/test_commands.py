"""manage.py teep_agent, run as a real process: exit status and output."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*args, tmp_path):
    env = {
        **os.environ,
        "DEBUG": "true",
        "DATA_DIR": os.environ.get("DATA_DIR") or str(tmp_path / "data"),
    }
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "teep_agent", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )


def test_init_prints_kid_and_public_key_path(tmp_path):
    from apps.teep.wire.keys import TeepKey

    state = tmp_path / "agent"
    done = run("--state", str(state), "--init", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    kid = TeepKey.from_pem((state / "keys" / "agent.pub.pem").read_bytes()).kid.hex()
    assert f"kid {kid}" in done.stdout
    assert str((state / "keys" / "agent.pub.pem").resolve()) in done.stdout


@pytest.mark.parametrize("url", ["not-a-url", "http://127.0.0.1:1/tam"])
def test_bad_tam_url_exits_1_with_one_line(tmp_path, url):
    done = run("--state", str(tmp_path / "agent"), "--tam", url, tmp_path=tmp_path)
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_tam_key_and_request_are_stored(tmp_path):
    from apps.teep.wire.keys import TeepKey

    tam_key = TeepKey.generate("ed25519")
    key_file = tmp_path / "tam.pem"
    key_file.write_bytes(tam_key.public_pem())
    state = tmp_path / "agent"
    done = run(
        "--state",
        str(state),
        "--tam-key",
        str(key_file),
        "--request",
        "TEEP-Device/SecureFS/h'8d82573a926d4754935332dc29997f74'/ta",
        tmp_path=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert f"trusted tam key {tam_key.kid.hex()}" in done.stdout
    assert (state / "trust" / "tam" / f"{tam_key.kid.hex()}.pem").exists()
    assert "8d82573a926d4754935332dc29997f74" in (state / "pending.json").read_text()


def test_identity_flags_are_kept_in_the_state_folder(tmp_path):
    state = tmp_path / "agent"
    vendor, klass = "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe", "1492af14-2569-5e48-bf42-9b2d51f2ab45"
    done = run("--state", str(state), "--vendor-id", vendor, "--class-id", klass, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads((state / "identity.json").read_text()) == {
        "vendor-ids": [vendor],
        "class-ids": [klass],
    }
    done = run("--state", str(state), "--vendor-id", "not-a-uuid", tmp_path=tmp_path)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1


def test_legacy_flags_reach_the_wire(tmp_path):
    """A libteep / teep-device style run: draft-25, ES256 only, label 5, tc-list [], chunked
    bodies, Host: example.com, SUIT reports signed with the TEEP key."""
    from apps.teep.wire import cose
    from apps.teep.wire.keys import TeepKey
    from apps.teep.wire.numbering import PRE_26
    from apps.teep.wire.suit import parse_report

    from .fake_tam import FakeTam
    from .test_legacy_modes import RecordingTam, payload_of

    tam = FakeTam(numbering=PRE_26)
    (tmp_path / "tam.pem").write_bytes(tam.p256.public_pem())
    with RecordingTam(tam, alg=-7) as recorder:
        done = run(
            "--state", str(tmp_path / "agent"), "--tam", recorder.url, "--numbering", "draft-25",
            "--tam-key", str(tmp_path / "tam.pem"), "--es256", "--verify-only-sign1-es256",
            "--selected-cipher-suite-label", "--empty-tc-list", "--chunked", "--host",
            "example.com", "--sign-reports-with-teep-key", "--omit-kid",
            tmp_path=tmp_path,
        )
    assert done.returncode == 0, done.stderr + done.stdout
    headers = [h for h, _ in recorder.posts]
    assert [h["Host"] for h in headers] == ["example.com"] * 3
    assert all(h["Transfer-Encoding"] == "chunked" for h in headers)
    _, query_response, success = (body for _, body in recorder.posts)
    signed = cose.parse(query_response)
    assert (signed.signatures[0].alg, signed.signatures[0].kid) == (-7, None)
    options = payload_of(query_response)[1]
    assert options[5] == [[18, -7]] and options[PRE_26.label("tc-list")] == []
    agent_key = TeepKey.from_pem((tmp_path / "agent" / "keys" / "agent.pub.pem").read_bytes())
    (report,) = payload_of(success)[1][PRE_26.label("suit-reports")]
    assert parse_report(report, keys=[agent_key]).verified_by.kid == agent_key.kid
