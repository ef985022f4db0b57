from django.apps import AppConfig


class TeepConfig(AppConfig):
    name = "apps.teep"
    label = "teep"
    verbose_name = "TEEP protocol"

    def ready(self):
        from django.conf import settings

        from apps.teep.wire import messages

        # encode() checks its own output by decoding it where an encoder bug should be loud
        # (the test suite, development), not on every policy check in production (issue 11).
        messages.ENCODE_SELF_CHECK = settings.TESTING or settings.DEBUG
