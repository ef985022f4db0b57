"""The README's commands work as written, in fresh shells with no exports, after its first
command (`./scripts/run.sh`).

How: the repository is copied to a temporary folder (its `.venv` linked to this one, so
nothing is installed), `./scripts/run.sh` is started there in the background with `BIND` on a
free port (the README documents BIND), and each ```sh block of the README up to
"## Configuration" (but the first, which holds run.sh and test.sh) and of "## API" runs, in
README order, as one `bash -e` script in a fresh environment holding only PATH, HOME and
LANG. One substitution: the README's address `http://127.0.0.1:8000` becomes the one run.sh
printed. Tokens and ids are not substituted: the blocks capture the token in a variable, and
the ids are those of the fresh install the README's quick start describes.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_ADDRESS = "http://127.0.0.1:8000"

pytestmark = pytest.mark.readme


def readme_blocks(text: str) -> list[tuple[str, str]]:
    """(section title, block) for every ```sh block the test runs, in README order."""
    blocks, section = [], ""
    for match in re.finditer(r"^## ([^\n]+)$|^```sh\n(.*?)^```$", text, re.M | re.S):
        if match.group(1) is not None:
            section = match.group(1).strip()
        elif section == "API" or not _after(text, match.start(), "## Configuration"):
            blocks.append((section, match.group(2)))
    return blocks[1:]  # the first block is the first command: run.sh (and test.sh)


def _after(text: str, position: int, heading: str) -> bool:
    found = text.find(f"\n{heading}\n")
    return found != -1 and position > found


def test_the_readme_blocks_are_the_ones_described():
    text = (ROOT / "README.md").read_text()
    first = re.search(r"^```sh\n(.*?)^```$", text, re.M | re.S).group(1)
    assert first.splitlines()[0].startswith("./scripts/run.sh")
    sections = [section for section, _ in readme_blocks(text)]
    assert "Tools for people" in sections and "API" in sections
    assert "Deployment" not in sections and "Configuration" not in sections


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def clean_env() -> dict[str, str]:
    """What a new login shell has: no DEBUG, DATABASE_URL, DATA_DIR, ... (no exports)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
    }


@pytest.fixture
def checkout(tmp_path):
    """A copy of the repository as a new user has it, sharing this test run's virtualenv."""
    venv = Path(sys.prefix)
    stamps = [p for p in venv.glob(".installed*") if p.stat().st_mtime >= _mtime("pyproject.toml")]
    if not (venv / "bin" / "python").exists() or not stamps:
        pytest.skip("runs from the project's ./.venv (./scripts/test.sh), which must be installed")
    copy = tmp_path / "tam-portal"
    shutil.copytree(
        ROOT,
        copy,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "data", "test-artifacts", "staticfiles", "__pycache__",
            ".pytest_cache", ".hypothesis", ".ruff_cache", "*.egg-info",
        ),
    )  # copy2 keeps modification times: bootstrap-venv.sh sees the project installed
    (copy / ".venv").symlink_to(venv, target_is_directory=True)
    return copy


def _mtime(name: str) -> float:
    return (ROOT / name).stat().st_mtime


@pytest.fixture
def portal(checkout):
    """`./scripts/run.sh` (with BIND) in the background; stopped at the end."""
    if shutil.which("curl") is None:
        if os.environ.get("CI"):
            pytest.fail("curl is required in CI (the README's API examples use it)")
        pytest.skip("curl is not installed (apt-get install curl)")
    port = free_port()
    log = checkout / "run.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            ["./scripts/run.sh"],
            cwd=checkout,
            env={**clean_env(), "BIND": f"127.0.0.1:{port}"},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: runserver and its reloader
        )
    try:
        url = _wait_until_serving(server, log, port)
        yield checkout, url, log
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _wait_until_serving(server, log: Path, port: int) -> str:
    deadline = time.monotonic() + 180
    url = f"http://127.0.0.1:{port}"
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"run.sh exited {server.returncode}:\n{log.read_text()}")
        if f"tam-portal: {url}/admin/" in log.read_text():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return url
            except OSError:
                pass
        time.sleep(0.5)
    pytest.fail(f"run.sh did not serve {url} within 180 s:\n{log.read_text()}")


def run_block(checkout: Path, block: str, url: str) -> subprocess.CompletedProcess:
    script = block.replace(README_ADDRESS, url)
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=checkout,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_every_readme_command_works_in_a_fresh_shell(portal):
    checkout, url, log = portal
    # run.sh printed the address it really serves, and remembered it for every later command.
    assert f"tam-portal: {url}/admin/" in log.read_text()
    dotenv = (checkout / "data" / ".env").read_text()
    assert "DEBUG=true" in dotenv and f"TAM_PUBLIC_BASE_URL={url}" in dotenv

    outputs = {}
    for section, block in readme_blocks((checkout / "README.md").read_text()):
        done = run_block(checkout, block, url)
        assert done.returncode == 0, (
            f"README block in '{section}' failed ({done.returncode}):\n{block}\n"
            f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )
        outputs[section] = outputs.get(section, "") + done.stdout

    rollout = outputs["Quick start: a rollout from the command line"]
    # On a port other than 8000, payload URIs follow it: every device installs, then removes.
    assert re.search(r"^installs\s+20$", rollout, re.M), rollout
    assert re.search(r"^removals\s+20$", rollout, re.M), rollout
    assert f'"payload_uri":"{url}/payloads/' in rollout
    agent = outputs["A TEEP Agent of your own"]
    assert "installed TEEP-Device/SecureFS/h'8d82573a926d4754935332dc29997f74'/ta" in agent
    tools = outputs["Tools for people"]
    assert tools.count('"signature": "valid"') == 4  # three TEEP messages and one SUIT envelope
    assert '"suit-envelope"' in tools and '"suit-report"' in tools
    assert "-----BEGIN PUBLIC KEY-----" in tools
    api = outputs["API"]
    assert '"state":"draft"' in api and '"sequence_number":2' in api
