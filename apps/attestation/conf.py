"""Attestation settings, read with defaults so the app works before settings.py lists them.

ATTESTATION_BACKEND                 "builtin" (default) or "veraison"
ATTESTATION_VALIDITY_SECONDS        how long an affirming appraisal keeps a key trusted (86400)
ATTESTATION_REQUEST_DEADLINE_SECONDS how long a TEEP request waits for the appraisal task (3)
ATTESTATION_RESULT_MAX_AGE_SECONDS  oldest iat accepted in an Attestation Result (300)
VERAISON_BASE_URL                   e.g. https://veraison.example:8443
VERAISON_EAR_PUBLIC_KEY_FILE        pinned EAR key: PEM, JWK, or the discovery JSON
VERAISON_CA_FILE                    CA bundle for the Veraison TLS certificate (system CAs if empty)
VERAISON_TIMEOUT_SECONDS            per HTTP call (10)
VERAISON_DEADLINE_SECONDS           whole session incl. polling a 202 (30; < Celery soft limit)
"""

from django.conf import settings

DEFAULTS = {
    "ATTESTATION_BACKEND": "builtin",
    "ATTESTATION_VALIDITY_SECONDS": 86400,
    "ATTESTATION_REQUEST_DEADLINE_SECONDS": 3,
    "ATTESTATION_RESULT_MAX_AGE_SECONDS": 300,
    "VERAISON_BASE_URL": "",
    "VERAISON_EAR_PUBLIC_KEY_FILE": "",
    "VERAISON_CA_FILE": "",
    "VERAISON_TIMEOUT_SECONDS": 10,
    "VERAISON_DEADLINE_SECONDS": 30,
}


def setting(name: str):
    return getattr(settings, name, DEFAULTS[name])
