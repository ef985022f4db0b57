import pytest


@pytest.fixture(autouse=True)
def _fresh_login_state(settings):
    # Lockout attempts are in the database (rolled back per test); the cache is per process.
    from django.core.cache import cache

    cache.clear()
    yield
