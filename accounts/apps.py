from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import middleware, schema  # noqa: F401  (the failed log-in counter; OpenAPI auth)
