"""Which failures mean "a backend is unreachable, retry later" and which are bugs.

DESIGN.md "the answers we give": an unreachable database, cache or broker is 503 with
Retry-After; every other failure (IntegrityError, ProgrammingError, DataError, a bug) is 500
with the detail in the server log and no traceback in the body. Only connection-level failures
count as unreachable: psycopg's OperationalError/InterfaceError family (refused or lost
connections, and also statement and lock timeouts, deadlocks: all "try again"), redis'
ConnectionError/TimeoutError, kombu's OperationalError (the broker).
"""

from __future__ import annotations

import sqlite3

from django.db import InterfaceError, OperationalError

# What a client is told to wait before retrying after a backend failure.
BACKEND_RETRY_AFTER_SECONDS = 30

# SQLite raises OperationalError for schema bugs too: those are not outages.
_SQLITE_BUGS = ("no such table", "no such column", "syntax error", "table ", "duplicate column")


def _redis_errors() -> tuple[type[BaseException], ...]:
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # pragma: no cover - redis comes with celery[redis]
        return ()
    return (RedisConnectionError, RedisTimeoutError)


def _broker_errors() -> tuple[type[BaseException], ...]:
    try:
        from kombu.exceptions import OperationalError as KombuOperationalError
    except ImportError:  # pragma: no cover - kombu comes with celery
        return ()
    return (KombuOperationalError,)


def unavailable_backend(exc: BaseException | None) -> str | None:
    """"database", "cache" or "broker" when `exc` says that backend is unreachable; else None."""
    if exc is None:
        return None
    if isinstance(exc, OperationalError | InterfaceError):
        cause = exc.__cause__
        if isinstance(cause, sqlite3.OperationalError) and str(cause).startswith(_SQLITE_BUGS):
            return None
        return "database"
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        psycopg = None
    if psycopg is not None and isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return "database"
    if isinstance(exc, _broker_errors()):
        return "broker"
    if isinstance(exc, _redis_errors()):
        return "cache"
    return None
