"""SUIT vendor / class ids per Trusted Component (SUIT manifest 8.4.8.3), filled for existing
components with the defaults new ones get: UUID5(DNS, TAM_VENDOR_DOMAIN) and
UUID5(vendor id, name). Stored envelopes are untouched: only versions built from now on carry
the conditions."""

import uuid

from django.conf import settings
from django.db import migrations, models


def fill_defaults(apps, schema_editor):
    TrustedComponent = apps.get_model("components", "TrustedComponent")
    vendor_id = uuid.uuid5(uuid.NAMESPACE_DNS, settings.TAM_VENDOR_DOMAIN)
    for component in TrustedComponent.objects.filter(suit_vendor_id__isnull=True):
        component.suit_vendor_id = vendor_id
        component.suit_class_id = uuid.uuid5(vendor_id, component.name)
        component.save(update_fields=["suit_vendor_id", "suit_class_id"])


class Migration(migrations.Migration):
    dependencies = [
        ("components", "0002_mark_compromised_permission"),
    ]

    operations = [
        migrations.AddField(
            model_name="trustedcomponent",
            name="suit_vendor_id",
            field=models.UUIDField(null=True),
        ),
        migrations.AddField(
            model_name="trustedcomponent",
            name="suit_class_id",
            field=models.UUIDField(null=True),
        ),
        migrations.RunPython(fill_defaults, migrations.RunPython.noop, elidable=True),
        migrations.AlterField(
            model_name="trustedcomponent",
            name="suit_vendor_id",
            field=models.UUIDField(
                blank=True,
                help_text=(
                    "UUID in suit-parameter-vendor-identifier. Empty: UUID5(DNS, TAM_VENDOR_DOMAIN)."
                ),
                verbose_name="SUIT vendor id",
            ),
        ),
        migrations.AlterField(
            model_name="trustedcomponent",
            name="suit_class_id",
            field=models.UUIDField(
                blank=True,
                help_text="UUID in suit-parameter-class-identifier. Empty: UUID5(vendor id, name).",
                verbose_name="SUIT class id",
            ),
        ),
    ]
