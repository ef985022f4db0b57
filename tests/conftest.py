from pathlib import Path

import pytest

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


@pytest.fixture
def artifacts_dir() -> Path:
    path = Path(__file__).resolve().parent.parent / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path
