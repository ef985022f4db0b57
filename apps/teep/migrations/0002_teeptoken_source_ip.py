from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("teep", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="teeptoken",
            name="source_ip",
            field=models.GenericIPAddressField(blank=True, null=True),
        ),
    ]
