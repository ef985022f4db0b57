"""A minimal agent made of the wire package, to drive the TAM state machine in tests."""

from dataclasses import dataclass, field

import pytest
from django.core.files.base import ContentFile

from apps.components import services as catalogue
from apps.devices.services import register_agent
from apps.teep.tam_keys import tam_keys
from apps.teep.wire import cose, messages
from apps.teep.wire.keys import TeepKey
from apps.teep.wire.numbering import CURRENT

TA_COMPONENT_ID = [b"TEEP-Device", b"SecureFS", bytes.fromhex("8d82573a926d4754935332dc29997f74"), b"ta"]


@dataclass
class SimAgent:
    key: TeepKey
    device: object
    numbering: object = CURRENT
    alg: int | None = None
    sent: list = field(default_factory=list)

    def sign(self, message) -> bytes:
        return cose.sign1(messages.encode(message, self.numbering), self.key, self.alg)

    def read(self, body: bytes):
        """Verify a TAM message with any TAM key and decode it."""
        for key in tam_keys().public_keys:
            try:
                return messages.decode(cose.verify(body, key), self.numbering)
            except ValueError:
                continue
        raise AssertionError("TAM message does not verify with any TAM key")


@pytest.fixture
def make_agent(db):
    def make(kind="p256", numbering=CURRENT, name="agent"):
        key = TeepKey.generate(kind)
        device = register_agent(public_key_bytes=key.public_pem(), name=name)
        return SimAgent(key=key, device=device, numbering=numbering)

    return make


@pytest.fixture
def trusted_app(db):
    """A Trusted Component with one released version (sequence number 1), fetched by URI."""
    component = catalogue.create_component(name="hello-ta", component_id=TA_COMPONENT_ID, actor=None)
    version = catalogue.upload_binary(
        component=component,
        binary_file=ContentFile(b"Hello, Secure World!", name="hello.ta"),
        version_label="1.0",
        sequence_number=1,
        actor=None,
        release=True,
    )
    return version


def release_new_version(component, sequence_number, payload=b"Hello again!"):
    return catalogue.upload_binary(
        component=component,
        binary_file=ContentFile(payload, name="hello.ta"),
        version_label=f"1.{sequence_number}",
        sequence_number=sequence_number,
        actor=None,
        release=True,
    )
