from django.core.management.base import BaseCommand

from inpainting.services.library import library_models_described, library_scan
from inpainting.services.mask_models import library_mask_models_described


class Command(BaseCommand):
    help = (
        "The model library: `models scan` records every diffusers folder and .safetensors "
        "checkpoint under MODELS_DIR (and the Hugging Face cache) with its family, the LoRAs, "
        "ControlNets and mask models; `models list` shows the enabled models and mask models."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=("scan", "list"))

    def handle(self, *args, action: str, **options):
        if action == "scan":
            report = library_scan()
            for label, names in (
                ("added", report.added),
                ("updated", report.updated),
                ("unchanged", report.unchanged),
                ("missing (marked not present)", report.missing),
            ):
                for name in names:
                    self.stdout.write(f"{label}: {name}")
            for name, why in report.refused:
                self.stdout.write(self.style.WARNING(f"refused: {name}: {why}"))
            self.stdout.write(self.style.SUCCESS(f"default: {report.default or '(none)'}"))
            return
        for item in library_models_described(offered=False):
            mark = " (default)" if item["default"] else ""
            self.stdout.write(
                f"{item['name']}{mark}: {item['family']}, {item['kind']}, {item['layout']}, "
                f"{item['size_bytes'] / 1e9:.2f} GB, sha256 {item['sha256'][:12]}, "
                f"{item['workers'] if item['workers'] is not None else '?'} live worker(s)"
            )
        for item in library_mask_models_described():
            self.stdout.write(
                f"masks/{item['name']}: {item['family_label']}, selects by "
                f"{', '.join(item['methods']) or 'nothing alone'}, {item['layout']}, "
                f"{item['size_bytes'] / 1e6:.1f} MB, sha256 {item['sha256']}"
            )
