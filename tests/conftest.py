from pathlib import Path

import pytest
from django.db.backends.postgresql.operations import DatabaseOperations as PostgresOperations

AUDIT_TABLE = "audit_auditevent"

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"


def _shared_dir() -> Path:
    """../shared beside the checkout (CI lays a copy of it there)."""
    for candidate in (SHARED, Path("/work/shared")):
        if (candidate / "specs").is_dir():
            return candidate
    raise RuntimeError("../shared/specs not found beside the checkout")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _shared_dir()


@pytest.fixture(scope="session")
def specs_dir(shared_dir) -> Path:
    return shared_dir / "specs"


@pytest.fixture(scope="session")
def vectors_dir(specs_dir) -> Path:
    return specs_dir / "vectors"


@pytest.fixture(autouse=True)
def celery_eager():
    """Tasks run in-process unless a test asks for the real broker (marker `broker`)."""
    from tam_portal.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def fresh_process_caches():
    """What a worker keeps between requests (the policy world per epoch, envelopes) belongs
    to one database: each test starts with none, as a new worker would (tests roll back, so
    an epoch number can come back with other data behind it)."""
    from apps.components.services import forget_cached_envelopes
    from apps.policies import world

    world.forget()
    forget_cached_envelopes()
    yield
    world.forget()
    forget_cached_envelopes()


@pytest.fixture
def artifacts_dir() -> Path:
    path = Path(__file__).resolve().parent.parent / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


_sql_flush = PostgresOperations.sql_flush


def _sql_flush_keeping_the_audit_trigger(self, style, tables, **kwargs):
    """Transactional tests end with a flush (TRUNCATE of every table), which the audit
    table's trigger refuses (apps/audit/migrations/0003). The test database's owner disables
    the trigger for that statement, in the flush's transaction, as an operator who owns the
    table would for retention; the trigger is back on when the flush commits."""
    statements = _sql_flush(self, style, tables, **kwargs)
    if AUDIT_TABLE not in tables or not statements:
        return statements
    toggle = f"ALTER TABLE {AUDIT_TABLE} {{}} TRIGGER audit_auditevent_no_truncate;"
    return [toggle.format("DISABLE"), *statements, toggle.format("ENABLE")]


PostgresOperations.sql_flush = _sql_flush_keeping_the_audit_trigger
