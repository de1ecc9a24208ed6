"""``manage.py inpaint``: one generation in this process, with a progress bar."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from accounts.models import User
from inpainting import engine
from inpainting.api.serializers import GenerationParamsSerializer
from inpainting.engine.parameters import PARAMETERS
from inpainting.errors import ClientError
from inpainting.services.additions import planned_uses
from inpainting.services.generations import MAX_REFERENCE_IMAGES
from inpainting.services.models import backend_config
from inpainting.services.plan import job_plan
from inpainting.uploads import IMAGE_FORMATS, MASK_FORMATS, UploadError, decode_image

#: Flags made from the one parameter table (``--prompt`` and the switches are below).
SWITCHES = [p for p in PARAMETERS.values() if p.kind is bool]
OPTIONS = [p for p in PARAMETERS.values() if p.name != "prompt" and p.kind is not bool]
TYPES = {int: int, float: float, str: str}


class Command(BaseCommand):
    help = "Inpaint one image in this process (same options and rules as POST /api/img2img)."

    def add_arguments(self, parser):
        parser.add_argument("--image", required=True, type=Path)
        parser.add_argument("--mask", type=Path, help="PNG; white kept, black inpainted")
        parser.add_argument("--prompt", default="")
        parser.add_argument(
            "--out",
            required=True,
            type=Path,
            help="output PNG; with several samples out-1.png, out-2.png, …",
        )
        for p in SWITCHES:  # --invert-mask, --soft
            parser.add_argument(p.cli_flag, dest=p.name, action="store_true", help=p.describe())
        for p in OPTIONS:
            parser.add_argument(
                p.cli_flag, dest=p.name, type=TYPES[p.kind], default=None, help=p.describe()
            )
        parser.add_argument(
            "--outpaint", default=None, help="JSON, e.g. '{\"left\": 64}' or '{\"width\": 1024}'"
        )
        parser.add_argument(
            "--controlnet",
            default=None,
            help="JSON, a ControlNet of the library (GET /api/controlnets) and its settings, "
            'e.g. \'{"name": "inpaint-cn", "conditioning_scale": 0.8}\'',
        )
        parser.add_argument(
            "--lora",
            action="append",
            default=[],
            metavar="NAME[:WEIGHT]",
            help="a LoRA of the library (GET /api/loras) at a weight (default 1); repeatable",
        )
        parser.add_argument(
            "--ip-adapter",
            default=None,
            metavar="NAME[:SCALE]",
            help="an IP-Adapter of the library (GET /api/ip-adapters) at a scale 0-1 (default "
            "1): the one --reference picture steers the inpainting model through it",
        )
        parser.add_argument(
            "--user",
            default=None,
            metavar="USERNAME",
            help="run as this user: only the models, LoRAs, ControlNets and IP-Adapters their "
            "groups give them (default: the operator's, everything)",
        )
        parser.add_argument(
            "--reference",
            action="append",
            default=[],
            type=Path,
            metavar="IMAGE",
            help="a reference picture for an edit model that reads them (Qwen-Image-Edit "
            f"Plus); repeatable, at most {MAX_REFERENCE_IMAGES}",
        )

    def handle(self, *args, **options):
        user = None
        if options["user"] is not None:
            user = User.objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"No user {options['user']!r}.")
        data = {"prompt": options["prompt"], **{p.name: options[p.name] for p in SWITCHES}}
        names = [p.name for p in OPTIONS] + ["outpaint", "controlnet"]
        data.update({name: options[name] for name in names if options[name] is not None})
        if options["lora"]:
            data["loras"] = [_lora(value) for value in options["lora"]]
        if options["ip_adapter"]:
            name, weight = _lora(options["ip_adapter"], flag="--ip-adapter").values()
            data["ip_adapter"] = {"name": name, "scale": weight}
        serializer = GenerationParamsSerializer(data=data)
        try:
            valid = serializer.is_valid()
        except ClientError as exc:  # an engine check of a field (scheduler, loras)
            raise CommandError(f"{exc.field}: {exc}" if exc.field else str(exc)) from None
        if not valid:
            raise CommandError(
                "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in serializer.errors.items())
            )
        params = serializer.to_params()
        if len(options["reference"]) > MAX_REFERENCE_IMAGES:
            raise CommandError(f"At most {MAX_REFERENCE_IMAGES} reference pictures.")
        try:
            image = decode_image(_read(options["image"]), field="image", formats=IMAGE_FORMATS)
            references = tuple(
                decode_image(_read(path), field="reference", formats=IMAGE_FORMATS)
                for path in options["reference"]
            )
            mask = (
                decode_image(_read(options["mask"]), field="mask", formats=MASK_FORMATS)
                if options["mask"]
                else None
            )
        except UploadError as exc:
            raise CommandError(exc.message) from None
        try:
            plan = job_plan(params, len(references), user)
            name, model = plan.engine, plan.model
            uses = {}
            if plan.family is not None:
                engine.check_prompts(params.prompt, params.negative_prompt)
                uses = planned_uses(plan.additions)
                params, warnings = params.for_family(plan.family, plan.model_name)
                for warning in warnings:
                    self.stderr.write(f"warning: {warning['message']}")
            else:
                params = params.with_defaults()
            backend = engine.get_backend(name, backend_config(name, model))
            bar = tqdm(desc=f"{name}", unit="step", total=None)

            def progress(event: engine.ProgressEvent) -> None:
                bar.total = event.total
                bar.n = event.step
                bar.refresh()

            result = engine.run_inpaint(
                params.to_request(image=image, mask=mask, reference_images=references, **uses),
                backend,
                progress=progress,
            )
            bar.close()
        except (engine.EngineError, ClientError) as exc:
            raise CommandError(str(exc)) from None
        out: Path = options["out"]
        for index, (picture, seed) in enumerate(zip(result.images, result.seeds, strict=True)):
            path = out if index == 0 else out.with_name(f"{out.stem}-{index}{out.suffix}")
            parameters = {
                **params.to_json(),
                "seed": seed,
                "engine": result.engine,
                "model": model.name if model else result.model,
            }
            if result.metadata.get("scheduler"):
                parameters["scheduler_used"] = result.metadata["scheduler"]
            path.write_bytes(engine.png_with_parameters(picture, parameters))
            self.stdout.write(f"{path} ({picture.width}x{picture.height}, seed {seed})")
        if result.metadata.get("note"):
            self.stdout.write(result.metadata["note"])


def _lora(value: str, flag: str = "--lora") -> dict:
    """``ink`` or ``ink:0.8`` as a ``loras`` entry (``--ip-adapter`` reads its scale so)."""
    name, _, weight = value.rpartition(":") if ":" in value else (value, "", "1")
    try:
        return {"name": name, "weight": float(weight)}
    except ValueError:
        raise CommandError(f"{flag} {value!r}: the weight after ':' must be a number.") from None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CommandError(f"Cannot read {path}: {exc.strerror}.") from None
