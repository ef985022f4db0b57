"""Test mode is chosen explicitly (TAM_TEST_MODE, set by the pytest configuration), never by
what happens to be imported: a production process that imports pytest keeps its production
settings (second factor, HTTPS redirect, HSTS, secure cookies)."""

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent.parent
PRODUCTION_ENV = {"SECRET_KEY": "x" * 60, "ALLOWED_HOSTS": "tam.example.com"}
PROBE = (
    "import pytest, django; django.setup(); from django.conf import settings as s; "
    "print(s.TESTING, s.OTP_ENFORCED, s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS > 0, "
    "s.SESSION_COOKIE_SECURE)"
)


def run_probe(tmp_path, **overrides) -> str:
    leaked = ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "TAM_TEST_MODE", "OTP_ENFORCED")
    env = {k: v for k, v in os.environ.items() if k not in leaked}
    env.update(DJANGO_SETTINGS_MODULE="tam_portal.settings", DATA_DIR=str(tmp_path), **overrides)
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_suite_runs_in_test_mode_because_its_configuration_says_so():
    assert os.environ.get("TAM_TEST_MODE") == "1"
    assert settings.TESTING is True


def test_importing_pytest_does_not_change_production_settings(tmp_path):
    assert run_probe(tmp_path, **PRODUCTION_ENV) == "False True True True True"


def test_test_mode_is_what_turns_the_production_defaults_off(tmp_path):
    probe = run_probe(tmp_path, TAM_TEST_MODE="1", **PRODUCTION_ENV)
    assert probe == "True False False False False"
