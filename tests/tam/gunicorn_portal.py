"""The portal served by gunicorn (the production server, README "Deployment") for tests over
real HTTP where the server matters: how it frames request bodies (chunked, oversize), which
Django's live_server (wsgiref) does differently.

The gunicorn process reads the pytest-django test database, so the tests that use it are
transactional (their rows are committed) and need PostgreSQL (the SQLite test database lives
in the test process's memory).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.db import connection

from apps.teep.tam_keys import tam_keys

ROOT = Path(__file__).resolve().parent.parent.parent
START_TIMEOUT_SECONDS = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def url_of_test_database() -> str:
    """DATABASE_URL with the test database's name (test_<name>) in place of the configured one."""
    configured = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(configured._replace(path="/" + connection.settings_dict["NAME"]))


@contextmanager
def gunicorn_portal(log_path: Path, **environment: str):
    """Serve the portal with one gunicorn sync worker on a free port; yields its base URL.
    `environment` adds settings (e.g. TEEP_ALLOWED_HOSTS) to the server's environment."""
    tam_keys()  # the development keys exist before the server looks for them (no race)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": url_of_test_database(),
        # One connection per request: none left open when pytest-django flushes or drops the
        # test database.
        "DATABASE_CONN_MAX_AGE": "0",
        "DATA_DIR": str(settings.DATA_DIR),
        "TAM_KEY_DIR": str(settings.TAM_KEY_DIR),
        "TAM_PUBLIC_BASE_URL": url,
        "CELERY_TASK_ALWAYS_EAGER": "true",
        **environment,
    }
    gunicorn = Path(sys.executable).with_name("gunicorn")
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [
                str(gunicorn),
                "tam_portal.wsgi",
                "-w",
                "1",
                "-b",
                f"127.0.0.1:{port}",
                "--timeout",
                "60",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_serving(server, port, log_path)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _wait_until_serving(server: subprocess.Popen, port: int, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {log_path.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                # /healthz: the worker has loaded Django, not only bound the socket.
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not serve within {START_TIMEOUT_SECONDS} s")
