import base64
import os

import pytest

from apps.personalization import services
from apps.teep.wire.keys import TeepKey

PLAINTEXT = b'{"name":"FOO Bar","secret":"0123456789abfcdef0123456789abcd"}'  # TEEP E Example 3


def write_key(path, raw: bytes | None = None) -> bytes:
    key = raw or os.urandom(32)
    path.write_bytes(base64.b64encode(key) + b"\n")
    return key


@pytest.fixture(autouse=True)
def data_key_file(settings, tmp_path):
    """Each test encrypts at rest under its own key file."""
    path = tmp_path / "data-key-1.b64"
    write_key(path)
    settings.TAM_DATA_ENCRYPTION_KEY_FILE = [str(path)]
    return path


@pytest.fixture
def operator(db):
    from tests.personalization.factories import OperatorFactory

    return OperatorFactory()


@pytest.fixture
def device(db):
    from tests.personalization.factories import DeviceFactory

    return DeviceFactory()


@pytest.fixture
def other_device(db):
    from tests.personalization.factories import DeviceFactory

    return DeviceFactory()


@pytest.fixture
def data_component(db):
    from tests.personalization.factories import DataComponentFactory

    return DataComponentFactory()


@pytest.fixture
def device_key(device, operator) -> TeepKey:
    """The device's key-agreement key (private: the test plays the device)."""
    key = TeepKey.generate("p256")
    services.register_device_encryption_key(
        device=device, public_key_bytes=key.public_pem(), actor=operator
    )
    return key


@pytest.fixture
def suit_cddl(specs_dir):
    from cddl_verifier import Validator

    return Validator((specs_dir / "cddl/suit-manifest-complete.cddl").read_text())


@pytest.fixture
def read_vector(vectors_dir):
    def read(relative: str) -> bytes:
        data = (vectors_dir / relative).read_bytes()
        if relative.endswith(".hex"):
            return bytes.fromhex("".join(data.decode().split()))
        return data

    return read
