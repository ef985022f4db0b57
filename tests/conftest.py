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
