from django.apps import AppConfig


class AttestationConfig(AppConfig):
    name = "apps.attestation"
    label = "attestation"
    verbose_name = "Remote attestation"
