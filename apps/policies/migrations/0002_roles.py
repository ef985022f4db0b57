"""Roles used to be created here; they now live in one place, apps/accounts/roles.py, and
accounts.0001_roles (which depends on this migration) syncs them. Kept, empty, so that the
migration graph of existing databases does not change."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("policies", "0001_initial"),
        ("components", "0002_mark_compromised_permission"),
        ("devices", "0003_device_attributes_installed_version_index"),
        ("audit", "0002_append_only_trigger"),
        ("teep", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations: list = []
