from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"
    verbose_name = "Accounts and roles"

    def ready(self):
        # Models added after the roles migration (a new app, a new permission) join their
        # roles at the next migrate, as Django's own permissions are created.
        post_migrate.connect(_sync_roles_after_migrate, sender=self)


def _sync_roles_after_migrate(sender, *, using, apps=None, **kwargs):
    # `flush` (TransactionTestCase) sends post_migrate without `apps`: the live registry.
    from django.apps import apps as global_apps

    from apps.accounts.services import sync_roles

    sync_roles(apps=apps or global_apps, using=using)

