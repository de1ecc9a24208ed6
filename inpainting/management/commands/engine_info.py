import json

from django.core.management.base import BaseCommand

from inpainting.conf import engine_config, model_status
from inpainting.engine import EngineError, get_backend
from inpainting.engine.backends.diffusers import resolve_device
from inpainting.engine.schedulers import scheduler_names


class Command(BaseCommand):
    help = "Show the inference configuration: device, engines, model, schedulers, load errors."

    def add_arguments(self, parser):
        parser.add_argument(
            "--load",
            action="store_true",
            help="load the diffusion model here to check that it loads",
        )
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args, load: bool, json: bool, **options):
        config = engine_config()
        info = {
            "engine": config.default(),
            "engines": config.available(),
            "device": resolve_device(config.device),
            "model": config.model_name("diffusers"),
            "load_sd_inpaint": config.load_diffusers,
            "classical_method": config.classical_method,
            "working_size": config.working_size,
            "schedulers": scheduler_names(),
            "worker_report": model_status(),
        }
        if load:
            try:
                get_backend("diffusers", config).load()
                info["model_load"] = "ok"
            except EngineError as exc:
                info["model_load"] = f"error: {exc}"
        if json:
            self.stdout.write(_json(info))
            return
        for key, value in info.items():
            if isinstance(value, list):
                value = ", ".join(value)
            self.stdout.write(f"{key:18} {value}")


def _json(info) -> str:
    return json.dumps(info, indent=2, default=str)
