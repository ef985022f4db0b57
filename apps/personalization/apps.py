from django.apps import AppConfig
from django.core.signals import setting_changed


def _forget_data_keys(*, setting, **kwargs):
    if setting in ("TAM_DATA_ENCRYPTION_KEY_FILE", "TAM_KEY_DIR", "TAM_GENERATE_DEVELOPMENT_KEYS"):
        from apps.personalization.at_rest import data_keys

        data_keys.cache_clear()


class PersonalizationConfig(AppConfig):
    name = "apps.personalization"
    label = "personalization"
    verbose_name = "Personalization data"

    def ready(self):
        setting_changed.connect(_forget_data_keys, dispatch_uid="personalization-data-keys")
