"""Making a backend unreachable for one block of a test, the way an outage looks to the portal."""

from __future__ import annotations

import socket
import sqlite3
from contextlib import contextmanager
from unittest import mock

from django.db import connection


def closed_port() -> int:
    """A local TCP port nobody listens on (connections to it are refused at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def database_unreachable():
    """PostgreSQL: the connection is closed and points at a closed port, so every query
    reconnects and fails as psycopg does when the server is down. SQLite (an in-memory test
    database cannot be closed): the open connection is set aside and opening one fails as
    sqlite3 does when the file cannot be opened. Use in transactional tests only."""
    if connection.vendor == "postgresql":
        saved = dict(connection.settings_dict)
        connection.close()
        connection.settings_dict.update(HOST="127.0.0.1", PORT=str(closed_port()))
        try:
            yield
        finally:
            connection.close()
            connection.settings_dict.clear()
            connection.settings_dict.update(saved)
        return
    saved_connection = connection.connection
    connection.connection = None
    failure = sqlite3.OperationalError("unable to open database file")
    try:
        with mock.patch.object(connection, "get_new_connection", side_effect=failure):
            yield
    finally:
        connection.connection = saved_connection


def unreachable_redis_url(db: int = 13) -> str:
    return f"redis://127.0.0.1:{closed_port()}/{db}"
