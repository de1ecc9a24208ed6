from django.apps import AppConfig


class InpaintingConfig(AppConfig):
    name = "inpainting"
    default_auto_field = "django.db.models.BigAutoField"
