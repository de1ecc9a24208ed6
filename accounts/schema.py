"""OpenAPI description of API key authentication (drf-spectacular extension)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class _KeyScheme(OpenApiAuthenticationExtension):
    #: The scheme's OpenAPI security definition, as it is.
    definition: dict = {}

    def get_security_definition(self, auto_schema):
        return dict(self.definition)


class ApiKeyScheme(_KeyScheme):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"
    definition = {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": (
            "`Api-Key dl_xxxxxxxx.secret` or `Bearer dl_xxxxxxxx.secret` (or the key alone "
            "in `X-API-Key`)."
        ),
    }


class BasicKeyScheme(_KeyScheme):
    target_class = "accounts.authentication.BasicKeyAuthentication"
    name = "BasicKeyAuth"
    definition = {
        "type": "http",
        "scheme": "basic",
        "description": "The API key as the password, any user name (AUTOMATIC1111's "
        "`--api-auth`); the key headers work as well.",
    }
