from django.db import migrations, models


def remember_newest_outcomes(apps, schema_editor):
    """Each device's newest QueryResponse report outcome per manifest digest, from the
    reports stored so far (what store_suit_reports() used to read back at every check)."""
    Device = apps.get_model("devices", "Device")
    SuitReport = apps.get_model("devices", "SuitReport")
    rows = (
        SuitReport.objects.filter(message_type="query-response")
        .order_by("device_id", "-received_at", "-id")
        .values_list("device_id", "manifest_digest", "success")
    )
    newest: dict[int, dict] = {}
    for device_id, digest, success in rows.iterator(chunk_size=5000):
        newest.setdefault(device_id, {}).setdefault(digest, success)
    devices = [Device(pk=pk, query_report_outcomes=outcomes) for pk, outcomes in newest.items()]
    Device.objects.bulk_update(devices, ["query_report_outcomes"], batch_size=1000)


class Migration(migrations.Migration):
    dependencies = [("devices", "0006_fast_path")]

    operations = [
        migrations.AddField(
            model_name="device",
            name="query_report_outcomes",
            field=models.JSONField(blank=True, default=dict, editable=False),
        ),
        migrations.RunPython(remember_newest_outcomes, migrations.RunPython.noop),
    ]
