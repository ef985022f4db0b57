"""The three roles and their permissions. Only the security officer may mark a component
version compromised (components.mark_compromised)."""

from django.db import migrations

VIEWER_APPS = ("devices", "components", "policies", "audit", "teep")
OPERATOR_CHANGES = {
    "devices": ("device", "tag"),
    "components": ("trustedcomponent", "componentversion", "tcsigner", "signerkey"),
    "policies": ("devicegroup", "attributerule", "policy", "deviceoverride", "queuedaction"),
}
SECURITY_OFFICER_EXTRA = (("components", "mark_compromised"), ("policies", "add_compromiseresponse"),
                          ("policies", "change_compromiseresponse"))


def create_roles(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after migrate; the roles need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")

    def perms(pairs):
        found = list(Permission.objects.filter(
            content_type__app_label__in={a for a, _ in pairs}, codename__in={c for _, c in pairs}
        ))
        return [p for p in found if (p.content_type.app_label, p.codename) in set(pairs)]

    viewing = list(Permission.objects.filter(content_type__app_label__in=VIEWER_APPS, codename__startswith="view_"))
    changing = perms([
        (app, f"{verb}_{model}")
        for app, models in OPERATOR_CHANGES.items()
        for model in models
        for verb in ("add", "change", "delete")
        if not (app == "components" and verb == "delete")
    ])
    roles = {
        "viewer": viewing,
        "operator": viewing + changing,
        "security officer": viewing + changing + perms(SECURITY_OFFICER_EXTRA),
    }
    for name, permissions in roles.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(permissions)


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

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
