from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Django's registration idiom: these modules need the app registry, ready only now.
        from . import middleware, schema  # noqa: F401, PLC0415 (log-in counter, OpenAPI auth)
