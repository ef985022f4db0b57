"""factory_boy factories for personalization tests: devices with keys, data components."""

import cbor2
import factory

from apps.components import identifiers
from apps.devices.models import Device
from apps.teep.wire.keys import TeepKey
from tests.components.factories import OperatorFactory, TrustedComponentFactory, UserFactory

# TEEP Appendix E Example 3: the data component and its manifest id.
CONFIG_COMPONENT_ID = [b"TEEP-Device", b"SecureFS", b"config.json"]
CONFIG_MANIFEST_ID = [b"TEEP-Device", b"SecureFS", b"config.suit"]

__all__ = ["DataComponentFactory", "DeviceFactory", "OperatorFactory", "UserFactory"]


class DeviceFactory(factory.django.DjangoModelFactory):
    """A registered device; its agent signing key is generated (pass `agent_key` to choose)."""

    class Meta:
        model = Device

    class Params:
        agent_key = factory.LazyFunction(lambda: TeepKey.generate("p256"))

    kid = factory.LazyAttribute(lambda o: o.agent_key.kid.hex())
    public_key = factory.LazyAttribute(
        lambda o: cbor2.dumps(o.agent_key.to_cose_key(private=False), canonical=True)
    )
    name = factory.Sequence(lambda n: f"device-{n}")


class DataComponentFactory(TrustedComponentFactory):
    name = "config.json"
    component_id = identifiers.encode(CONFIG_COMPONENT_ID)
    manifest_component_id = identifiers.encode(CONFIG_MANIFEST_ID)
