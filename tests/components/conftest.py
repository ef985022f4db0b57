import binascii
import os

import pytest

# Playwright's sync API runs an event loop in the test thread; pytest-django's live_server and
# database access from that thread are safe here (playwright-pytest #46).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

EXAMPLE_PAYLOAD = b"Hello, Secure World!"  # TEEP Appendix E's TC binary


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Every test stores uploads in its own folder, so 'no file left behind' can be checked."""
    root = tmp_path / "media"
    root.mkdir()
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root)},
        },
    }
    settings.TAM_PUBLIC_BASE_URL = "https://tam.example"
    return root


def stored_files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture
def read_vector(vectors_dir):
    def read(relative: str) -> bytes:
        data = (vectors_dir / relative).read_bytes()
        if relative.endswith(".hex"):
            return binascii.unhexlify("".join(data.decode().split()))
        return data

    return read


@pytest.fixture
def operator(db):
    from tests.components.factories import OperatorFactory

    return OperatorFactory()


@pytest.fixture
def example_component(db):
    from tests.components.factories import ExampleComponentFactory

    return ExampleComponentFactory()


@pytest.fixture
def example_signer(db, operator, example_component, read_vector):
    """The SUIT example signer (keys/suit-example-signer), allowed for the example component."""
    from apps.components import services

    return services.register_signer(
        name="Example TC signer",
        public_key_bytes=read_vector("keys/suit-example-signer.public.pem"),
        components=[example_component],
        actor=operator,
    )
