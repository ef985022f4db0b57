"""LOG_FORMAT=json: one JSON object per line, with the request id; no bodies, keys, tokens."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from apps.ops.logs import JsonFormatter, RequestIdFilter

ROOT = Path(__file__).resolve().parent.parent.parent
TEEP = "application/teep+cbor"


@pytest.fixture
def json_lines():
    """Records of every logger, formatted as production formats them with LOG_FORMAT=json."""
    lines = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield lines
    root.removeHandler(handler)


def test_log_format_json_gives_one_json_object_per_line(tmp_path):
    env = {**os.environ, "LOG_FORMAT": "json", "DJANGO_SETTINGS_MODULE": "tam_portal.settings"}
    probe = ("import django, logging; django.setup(); "
             "logging.getLogger('apps.probe').warning('two\\nlines'); "
             "logging.getLogger('apps.probe').info('second record')")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if '"apps.probe"' in line]
    records = [json.loads(line) for line in lines]
    assert [r["message"] for r in records] == ["two\nlines", "second record"]
    assert set(records[0]) == {"time", "level", "logger", "message"}
    assert records[0]["level"] == "WARNING" and records[0]["logger"] == "apps.probe"


@pytest.mark.django_db
def test_records_logged_during_a_request_carry_its_id(client, json_lines):
    response = client.post("/tam", data=b"\xff not cbor", content_type=TEEP, HTTP_ACCEPT=TEEP,
                           HTTP_X_REQUEST_ID="req-0123456789")
    assert response["X-Request-ID"] == "req-0123456789"
    records = [json.loads(line) for line in json_lines]
    dropped = [r for r in records if r["logger"] == "apps.tam.engine"]
    assert dropped and all(r["request_id"] == "req-0123456789" for r in dropped)
    assert all("\xff" not in r["message"] for r in records)


@pytest.mark.django_db
def test_a_failure_is_logged_with_its_traceback_in_one_record(json_lines, monkeypatch):
    from django.test import Client

    from apps.tam import engine

    def broken(**kwargs):
        raise KeyError("internal detail")

    monkeypatch.setattr(engine, "process_connect", broken)
    Client(raise_request_exception=False).post("/tam", data=b"", content_type=TEEP,
                                               HTTP_ACCEPT=TEEP)
    failure = next(json.loads(line) for line in json_lines if "unexpectedly" in line)
    assert "KeyError: 'internal detail'" in failure["exception"]
    assert failure["request_id"]


def test_an_unknown_log_format_refuses_to_start(tmp_path):
    env = {**os.environ, "LOG_FORMAT": "xml", "DJANGO_SETTINGS_MODULE": "tam_portal.settings"}
    done = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "LOG_FORMAT" in done.stderr
