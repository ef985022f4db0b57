from django.apps import AppConfig


class TamConfig(AppConfig):
    """The TAM engine: the TEEP state machine and its HTTP endpoint, above the domain apps."""

    name = "apps.tam"
    label = "tam"
    verbose_name = "TAM engine"

    def ready(self):
        from apps.tam import compat

        # A mistyped compatibility profile stops the server rather than serving the default.
        compat.check_settings()
