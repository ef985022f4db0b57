import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import Client

from apps.api.services import create_token
from tests.accounts.helpers import ANONYMOUS, make_user


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
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


def token_client(role: str, *, username: str | None = None) -> tuple[Client, object | None]:
    """A client sending `Authorization: Token …` of a fresh user of `role`."""
    if role == ANONYMOUS:
        return Client(), None
    user = make_user(role, username=username)
    _, raw = create_token(user, name="tests", acting_user=None)
    return Client(HTTP_AUTHORIZATION=f"Token {raw}"), user


@pytest.fixture
def agent_public_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture
def component(db):
    from tests.components.factories import TrustedComponentFactory

    return TrustedComponentFactory()
