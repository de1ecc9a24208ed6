import json

from django.core.management.base import BaseCommand

from inpainting.conf import deployment_family, engine_config, lama_file, model_status
from inpainting.engine import EngineError, get_backend
from inpainting.engine.backends.loading import resolve_device
from inpainting.engine.families import FAMILIES, Family
from inpainting.engine.schedulers import scheduler_names
from inpainting.fleet import fleet_summary


class Command(BaseCommand):
    help = "Show the inference configuration: device, engines, model, schedulers, load errors."

    def add_arguments(self, parser):
        parser.add_argument(
            "--load",
            action="store_true",
            help="load the diffusion model, and open the LaMa file, here to check that they load",
        )
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args, load: bool, json: bool, **options):
        config = engine_config()
        lama_path = lama_file()
        info = {
            "engine": config.default(),
            "engines": config.available(),
            "device": resolve_device(config.device),
            "model": config.model_name("diffusers"),
            "load_sd_inpaint": config.load_diffusers,
            "classical_method": config.classical_method,
            "working_size": config.working_size or deployment_family().working_size,
            "schedulers": scheduler_names(),
            "worker_report": model_status(),
            "lama": {
                "present": config.lama_model is not None,
                "path": str(lama_path),
                "size": lama_path.stat().st_size if config.lama_model is not None else None,
            },
            "lama_worker_report": model_status("lama"),
            "workers": fleet_summary(),
            "families": {name: _family(f) for name, f in FAMILIES.items()},
        }
        if load:
            try:
                get_backend("diffusers", config).load()
                info["model_load"] = "ok"
            except EngineError as exc:
                info["model_load"] = f"error: {exc}"
            info["lama_load"] = _lama_load(config, lama_path)
        if json:
            self.stdout.write(_json(info))
            return
        for key, value in info.items():
            if key == "workers":
                value = "; ".join(_worker_line(w) for w in value) if value else "none live"
            elif key == "families":
                for name, family in value.items():
                    self.stdout.write(f"family {name:11} {_family_line(family)}")
                continue
            elif isinstance(value, list):
                value = ", ".join(value)
            elif isinstance(value, dict):
                value = " ".join(f"{k}={v}" for k, v in value.items())
            self.stdout.write(f"{key:18} {value}")


def _lama_load(config, lama_path) -> str:
    """Open the LaMa session here (as a worker does on its first lama job): ok, or why not."""
    if config.lama_model is None:
        return f"error: no LaMa model file at {lama_path} (set LAMA_MODEL or copy it there)"
    try:
        get_backend("lama", config).load()
    except EngineError as exc:
        return f"error: {exc}"
    return "ok"


def _worker_line(report: dict) -> str:
    serves = ", ".join(report["models"]) or "no library model"
    memory = report.get("memory") or {}
    loaded = ", ".join(
        f"{name} ({memory[name] / 2**30:.2f} GiB)" if name in memory else name
        for name in report["loaded"]
    )
    loaded = loaded or "nothing"
    return f"{report['worker']} (pid {report['pid']}) serves {serves}, holds {loaded}"


def _json(info) -> str:
    return json.dumps(info, indent=2, default=str)


def _family(family: Family) -> dict:
    """A family as GET /api/models describes its models: working size and what it accepts."""
    return {
        "label": family.label,
        "pipeline": family.pipeline,
        "working_size": family.working_size,
        "cuda_dtype": family.cuda_dtype,
        "accepts": family.accepts(),
    }


def _family_line(family: dict) -> str:
    accepts = family["accepts"]
    uses = [k for k in ("negative_prompt", "schedulers", "clip_skip", "prompt_weighting",
                        "loras", "controlnet") if accepts[k]]  # fmt: skip
    steps, guidance = accepts["num_inference_steps"], accepts["guidance_scale"]
    return (
        f"{family['label']}: {family['pipeline']}, {family['working_size']} px, "
        f"{family['cuda_dtype']} on CUDA; steps {steps['default']} (at most {steps['maximum']}), "
        f"guidance {guidance['default']} ({guidance['minimum']}-{guidance['maximum']}); "
        f"uses {', '.join(uses) or 'none of negative prompt, schedulers, clip skip, LoRAs'}"
        + (
            f"; edits by words, with or without a mask ({accepts['reference_images']} "
            "reference pictures)"
            if accepts["edits"]
            else ""
        )
        + ("; keeps a transparent background" if accepts["transparent_background"] else "")
    )
