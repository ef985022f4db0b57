"""factory_boy factories for policies."""

import factory

from apps.devices.models import Device, Tag
from apps.policies.models import AttributeRule, DeviceGroup, DeviceOverride, Policy


class TagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tag
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"tag-{n}")


class DeviceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Device

    kid = factory.Sequence(lambda n: f"{n:064x}")
    public_key = b"\xa0"
    name = factory.Sequence(lambda n: f"device-{n}")


class DeviceGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DeviceGroup
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"group-{n}")

    @factory.post_generation
    def tags(self, create, names):
        if create and names:
            self.tags.set([TagFactory(name=n) for n in names])


class AttributeRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AttributeRule

    group = factory.SubFactory(DeviceGroupFactory)
    attribute = "hwmodel"
    operator = AttributeRule.Operator.EQUALS
    value = "model-a"


class PolicyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Policy

    group = factory.SubFactory(DeviceGroupFactory)
    effect = "required"
    version = None


class DeviceOverrideFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DeviceOverride

    effect = "required"
