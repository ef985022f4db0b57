"""The role groups of apps/accounts/roles.py, after every app whose permissions they hold.

It supersedes the groups created by policies.0002_roles (same names, permissions from
roles.py). Later models join their roles through the post_migrate sync (AccountsConfig)."""

from django.db import migrations


def sync(apps, schema_editor):
    from apps.accounts.services import sync_roles

    sync_roles(apps=apps, using=schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("audit", "0002_append_only_trigger"),
        ("components", "0002_mark_compromised_permission"),
        ("devices", "0003_device_attributes_installed_version_index"),
        ("teep", "0001_initial"),
        ("policies", "0002_roles"),
        ("attestation", "0001_initial"),
        ("personalization", "0001_initial"),
        ("otp_totp", "0003_add_timestamps"),
        ("admin", "0003_logentry_add_action_flag_choices"),
        ("sessions", "0001_initial"),
        ("axes", "0010_accessattemptexpiration"),
        ("api", "0001_initial"),
    ]

    operations = [migrations.RunPython(sync, migrations.RunPython.noop)]
