"""Production settings: `check --deploy` is clean, and nothing unsafe has a default."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_manage(*args, **env_overrides):
    # Nothing of the test process leaks in (browser tests set DJANGO_ALLOW_ASYNC_UNSAFE).
    leaked = ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DJANGO_ALLOW_ASYNC_UNSAFE", "TAM_TEST_MODE")
    env = {k: v for k, v in os.environ.items() if k not in leaked}
    env.update(env_overrides)
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_check_deploy_reports_nothing_under_production_settings(tmp_path):
    done = run_manage(
        "check", "--deploy", "--fail-level", "WARNING",
        SECRET_KEY=secrets.token_urlsafe(60), ALLOWED_HOSTS="tam.example.com", DATA_DIR=str(tmp_path),
        TAM_GENERATE_DEVELOPMENT_KEYS="true",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_production_refuses_to_start_without_secret_key_or_hosts(tmp_path):
    done = run_manage("check", ALLOWED_HOSTS="tam.example.com", DATA_DIR=str(tmp_path))
    assert done.returncode != 0 and "SECRET_KEY" in done.stderr
    done = run_manage("check", SECRET_KEY=secrets.token_urlsafe(60), DATA_DIR=str(tmp_path))
    assert done.returncode != 0 and "ALLOWED_HOSTS" in done.stderr


def test_production_has_no_default_tam_keys(tmp_path):
    done = run_manage("tam_keys", "export", SECRET_KEY=secrets.token_urlsafe(60),
                      ALLOWED_HOSTS="tam.example.com", DATA_DIR=str(tmp_path))
    assert done.returncode != 0 and "TAM_SIGNING_KEY_FILES" in done.stderr
    assert not (tmp_path / "keys").exists()
