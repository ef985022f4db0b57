from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "apps.api"
    label = "api"
    verbose_name = "Management API"

    def ready(self):
        from apps.api import schema  # noqa: F401  registers the token auth scheme
