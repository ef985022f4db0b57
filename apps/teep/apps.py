from django.apps import AppConfig


class TeepConfig(AppConfig):
    name = "apps.teep"
    label = "teep"
    verbose_name = "TEEP protocol"
