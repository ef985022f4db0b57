"""OpenAPI (drf-spectacular): only /api/v1/ is documented; the TEEP endpoint speaks CBOR to
agents and is specified by the TEEP drafts, not by this schema."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension

API_PREFIX = "/api/v1/"


def management_api_only(endpoints, **kwargs):
    return [
        (path, path_regex, method, callback)
        for path, path_regex, method, callback in endpoints
        if path.startswith(API_PREFIX)
        and not path.startswith(API_PREFIX + "schema")
        and not path.startswith(API_PREFIX + "docs")
    ]


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apps.api.authentication.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": 'Value "Token tam_…" ; `manage.py create_api_token USER` makes one.',
        }
