"""Issue 11: Update tokens are minted (apps/teep/tokens.py), so a delivery keeps its token's
value and expiry instead of a foreign key to a stored token; and the policy check's fast path
remembers what the device last reported when nothing was due (reconciled_digest/epoch)."""

from django.db import migrations, models


def copy_token_values(apps, schema_editor):
    DeliveryItem = apps.get_model("devices", "DeliveryItem")
    for item in DeliveryItem.objects.filter(token__isnull=False).select_related("token").iterator():
        item.update_token = bytes(item.token.value)
        item.expires_at = item.token.expires_at
        item.save(update_fields=["update_token", "expires_at"])


class Migration(migrations.Migration):

    dependencies = [
        ("devices", "0005_device_accepts_kidless"),
        ("teep", "0002_teeptoken_source_ip"),
    ]

    operations = [
        migrations.AddField(
            model_name="deliveryitem",
            name="expires_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="deliveryitem",
            name="update_token",
            field=models.BinaryField(blank=True, db_index=True, max_length=64, null=True),
        ),
        migrations.RunPython(copy_token_values, migrations.RunPython.noop),
        migrations.RemoveField(
            model_name="deliveryitem",
            name="token",
        ),
        migrations.AddField(
            model_name="device",
            name="reconciled_digest",
            field=models.CharField(blank=True, editable=False, max_length=64),
        ),
        migrations.AddField(
            model_name="device",
            name="reconciled_epoch",
            field=models.BigIntegerField(blank=True, editable=False, null=True),
        ),
    ]
