from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from huggingface_hub import snapshot_download

from inpainting.engine.backends.loading import resolve_model

#: Only what from_pretrained needs from a diffusers repository, safetensors weights only.
ALLOW_PATTERNS = ["*.json", "*.txt", "*.safetensors", "tokenizer/*", "*.model"]


class Command(BaseCommand):
    help = (
        "Download a diffusers inpainting model (safetensors only) into the Hugging Face "
        "cache, so workers can load it offline. Needs network access."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "model", nargs="?", default=None, help="Hugging Face id (default: SD_INPAINT_MODEL)"
        )
        parser.add_argument("--revision", default=None)

    def handle(self, *args, model: str | None, revision: str | None, **options):
        model = resolve_model(model or settings.SD_INPAINT_MODEL)
        self.stdout.write(f"Downloading {model} into the Hugging Face cache …")
        try:
            path = snapshot_download(model, revision=revision, allow_patterns=ALLOW_PATTERNS)
        except Exception as exc:
            raise CommandError(
                f"Could not download {model}: {type(exc).__name__}: {exc}. This needs network "
                "access to the Hugging Face Hub (and HF_HUB_OFFLINE unset); on a machine "
                "without one, copy a downloaded model folder here and set SD_INPAINT_MODEL "
                "to its path."
            ) from exc
        self.stdout.write(self.style.SUCCESS(f"Done: {path}"))
