"""``manage.py inpaint``: one generation in this process, with a progress bar."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from inpainting import engine
from inpainting.api.serializers import GenerationParamsSerializer
from inpainting.conf import engine_config
from inpainting.uploads import IMAGE_FORMATS, MASK_FORMATS, UploadError, decode_image

OPTIONS = [
    # (flag, dest, type, help)
    ("--negative-prompt", "negative_prompt", str, "what to avoid"),
    ("--denoising-strength", "denoising_strength", float, "0.0-1.0 (default 0.75)"),
    ("--steps", "num_inference_steps", int, "1-150 (default 30)"),
    ("--guidance-scale", "guidance_scale", float, "1-20 (default 7.5)"),
    ("--seed", "seed", int, "0-4294967295; -1 = random (default)"),
    ("--samples", "samples", int, "1-4 (default 1)"),
    ("--scheduler", "scheduler", str, "a name from engine_info"),
    ("--mask-mode", "mask_mode", str, "black_inpaints (default) or white_inpaints"),
    ("--mask-blur", "mask_blur", int, "0-64 (default 4)"),
    ("--mask-grow", "mask_grow", int, "-64..64 (default 0)"),
    ("--inpaint-area", "inpaint_area", str, "auto (default), masked or whole"),
    ("--padding", "padding", int, "0-256 (default 32)"),
    ("--outpaint", "outpaint", str, "JSON, e.g. '{\"left\": 64}' or '{\"width\": 1024}'"),
    ("--engine", "engine", str, "classical or diffusers (default: the server default)"),
]


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
        parser.add_argument("--invert-mask", action="store_true", dest="invert_mask")
        for flag, dest, kind, text in OPTIONS:
            parser.add_argument(flag, dest=dest, type=kind, default=None, help=text)

    def handle(self, *args, **options):
        data = {"prompt": options["prompt"], "invert_mask": options["invert_mask"]}
        data.update({dest: options[dest] for _, dest, _, _ in OPTIONS if options[dest] is not None})
        serializer = GenerationParamsSerializer(data=data)
        if not serializer.is_valid():
            raise CommandError(
                "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in serializer.errors.items())
            )
        params = serializer.to_params()
        try:
            image = decode_image(_read(options["image"]), field="image", formats=IMAGE_FORMATS)
            mask = (
                decode_image(_read(options["mask"]), field="mask", formats=MASK_FORMATS)
                if options["mask"]
                else None
            )
        except UploadError as exc:
            raise CommandError(exc.message) from None
        config = engine_config()
        try:
            name = config.choose(params.engine)
            backend = engine.get_backend(name, config)
            bar = tqdm(desc=f"{name}", unit="step", total=None)

            def progress(event: engine.ProgressEvent) -> None:
                bar.total = event.total
                bar.n = event.step
                bar.refresh()

            result = engine.run_inpaint(
                params.to_request(image=image, mask=mask), backend, progress=progress
            )
            bar.close()
        except engine.EngineError as exc:
            raise CommandError(str(exc)) from None
        out: Path = options["out"]
        for index, (picture, seed) in enumerate(zip(result.images, result.seeds, strict=True)):
            path = out if index == 0 else out.with_name(f"{out.stem}-{index}{out.suffix}")
            parameters = {
                **params.to_json(),
                "seed": seed,
                "engine": result.engine,
                "model": result.model,
            }
            path.write_bytes(engine.png_with_parameters(picture, parameters))
            self.stdout.write(f"{path} ({picture.width}x{picture.height}, seed {seed})")
        if result.metadata.get("note"):
            self.stdout.write(result.metadata["note"])


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CommandError(f"Cannot read {path}: {exc.strerror}.") from None
