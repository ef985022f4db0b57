"""The embedded default's settings file: scripts/run.sh writes DEBUG, BIND and
TAM_PUBLIC_BASE_URL to DATA_DIR/.env; settings read it unless the environment says otherwise,
so manage.py works in any later shell and the port chosen once is used everywhere."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRINT_SETTINGS = (
    "import django; django.setup(); from django.conf import settings; "
    "print(settings.DEBUG, settings.TAM_PUBLIC_BASE_URL, settings.TEEP_RATE_LIMIT_PER_SOURCE)"
)


def clean_env(**extra) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "tam_portal.settings", **extra}


def settings_seen(data_dir: Path, **extra) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS],
        cwd=ROOT,
        env=clean_env(DATA_DIR=str(data_dir), **extra),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def data_dir(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / ".env").write_text(
        "# written by run.sh\n"
        "DEBUG=true\n"
        "BIND=127.0.0.1:9123\n"
        "TAM_PUBLIC_BASE_URL=http://127.0.0.1:9123\n"
        "TEEP_RATE_LIMIT_PER_SOURCE=0/60\n"
    )
    return folder


def test_a_new_shell_gets_the_settings_run_sh_wrote(data_dir):
    done = settings_seen(data_dir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "http://127.0.0.1:9123", "0/60"]


def test_the_environment_wins_over_the_file(data_dir):
    done = settings_seen(data_dir, TAM_PUBLIC_BASE_URL="https://tam.example.com")
    assert done.stdout.split() == ["True", "https://tam.example.com", "0/60"]


def test_debug_false_in_the_environment_ignores_the_file(data_dir):
    done = settings_seen(
        data_dir, DEBUG="false", SECRET_KEY="x" * 50, ALLOWED_HOSTS="tam.example.com"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "http://127.0.0.1:8000", "600/60"]


def test_without_the_file_a_new_shell_is_told_to_run_run_sh(tmp_path):
    done = settings_seen(tmp_path)
    assert done.returncode != 0
    assert "must be set when DEBUG is off" in done.stderr and "./scripts/run.sh" in done.stderr


def run_sh(data_dir: Path, **extra) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["./scripts/run.sh", "--setup-only"],
        cwd=ROOT,
        env={**clean_env(DATA_DIR=str(data_dir), HOME=str(data_dir)), **extra},
        capture_output=True,
        text=True,
        timeout=300,
    )


def env_lines(data_dir: Path) -> set[str]:
    return {line for line in (data_dir / ".env").read_text().splitlines() if "=" in line}


def test_run_sh_remembers_the_port_and_prints_the_address_it_serves(tmp_path):
    data_dir = tmp_path / "data"
    first = run_sh(data_dir, BIND="8123")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "tam-portal: http://127.0.0.1:8123/admin/" in first.stdout
    assert {
        "DEBUG=true",
        "BIND=127.0.0.1:8123",
        "TAM_PUBLIC_BASE_URL=http://127.0.0.1:8123",
    } <= env_lines(data_dir)
    assert "password" in first.stdout  # the operator account, once

    with (data_dir / ".env").open("a") as dotenv:
        dotenv.write("TEEP_RATE_LIMIT_PER_SOURCE=0/60\n")  # a line of the user's own
    again = run_sh(data_dir)  # no BIND: the one chosen before
    assert again.returncode == 0, again.stdout + again.stderr
    assert "tam-portal: http://127.0.0.1:8123/admin/" in again.stdout
    assert {"BIND=127.0.0.1:8123", "TEEP_RATE_LIMIT_PER_SOURCE=0/60"} <= env_lines(data_dir)

    moved = run_sh(data_dir, BIND="0.0.0.0:8124")
    assert "tam-portal: http://127.0.0.1:8124/admin/" in moved.stdout
    lines = env_lines(data_dir)
    assert {"BIND=0.0.0.0:8124", "TAM_PUBLIC_BASE_URL=http://127.0.0.1:8124"} <= lines
    assert sum(line.startswith("BIND=") for line in lines) == 1


def test_run_sh_refuses_a_malformed_bind(tmp_path):
    done = run_sh(tmp_path / "data", BIND="localhost:http")
    assert done.returncode == 2 and "BIND must be host:port" in done.stderr
