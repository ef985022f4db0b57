"""factory_boy factories for the catalogue."""

import factory
from django.conf import settings
from django.contrib.auth import get_user_model

from apps.components import identifiers
from apps.components.models import TCSigner, TrustedComponent

# TEEP Appendix E: the TC every example manifest installs.
EXAMPLE_COMPONENT_ID = [
    b"TEEP-Device",
    b"SecureFS",
    bytes.fromhex("8d82573a926d4754935332dc29997f74"),
    b"ta",
]


PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password(PASSWORD)


class OperatorFactory(UserFactory):
    username = "operator"
    is_staff = True
    is_superuser = True


class TrustedComponentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TrustedComponent

    name = factory.Sequence(lambda n: f"component-{n}")
    vendor = "Example Vendor"
    component_id = factory.Sequence(
        lambda n: identifiers.encode([b"TEEP-Device", b"SecureFS", f"tc-{n}".encode(), b"ta"])
    )
    manifest_component_id = factory.LazyAttribute(
        lambda o: identifiers.encode(
            identifiers.default_manifest_component_id(identifiers.decode(o.component_id))
        )
    )
    # The defaults services.create_component gives (SUIT manifest 8.4.8.3).
    suit_vendor_id = factory.LazyFunction(
        lambda: identifiers.default_vendor_id(settings.TAM_VENDOR_DOMAIN)
    )
    suit_class_id = factory.LazyAttribute(
        lambda o: identifiers.default_class_id(o.suit_vendor_id, o.name)
    )


class ExampleComponentFactory(TrustedComponentFactory):
    """The Trusted Component of the TEEP Appendix E manifests."""

    name = "SecureFS TA"
    component_id = identifiers.encode(EXAMPLE_COMPONENT_ID)


class TCSignerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TCSigner

    name = factory.Sequence(lambda n: f"signer-{n}")
