"""manage.py teep_agent, run as a real process: exit status and output."""

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
