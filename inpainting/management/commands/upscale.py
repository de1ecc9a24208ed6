"""``manage.py upscale``: one picture upscaled in this process, with a progress bar per tile."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from inpainting import engine
from inpainting.engine import upscale
from inpainting.errors import ClientError
from inpainting.services.upscale import (
    UpscaleAsk,
    upscale_image,
    upscale_middle,
    upscale_target,
)
from inpainting.uploads import IMAGE_FORMATS, UploadError, decode_image, image_size


class Command(BaseCommand):
    help = (
        "Upscale one picture in this process (the rules of POST /api/upscale): by a factor, "
        "or to a width and / or height, with lanczos, nearest, an upscaler of the library or "
        "a super-resolution model file."
    )

    def add_arguments(self, parser):
        parser.add_argument("--image", required=True, type=Path)
        parser.add_argument("--out", required=True, type=Path, help="output PNG")
        parser.add_argument("--factor", type=float, help="1 to 4 (default 2)")
        parser.add_argument(
            "--width",
            type=int,
            help="alone: the aspect ratio is kept; with --height the picture covers both and "
            "its middle is cut out",
        )
        parser.add_argument("--height", type=int, help="alone: the aspect ratio is kept")
        parser.add_argument(
            "--upscaler",
            default="lanczos",
            help="lanczos (default), nearest, an upscaler of the library (GET /api/upscalers), "
            "or the path of a .safetensors / weights-only .pth super-resolution model",
        )

    def handle(self, *args, **options):
        if options["factor"] is not None and (options["width"] or options["height"]):
            raise CommandError("Give --factor, or --width and / or --height, not both.")
        factor = options["factor"]
        if factor is None and not (options["width"] or options["height"]):
            factor = 2.0
        name, model_path = options["upscaler"], None
        if name not in upscale.RESAMPLERS and Path(name).is_file():
            model_path, name = Path(name), Path(name).name
        try:
            data = options["image"].read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {options['image']}: {exc.strerror}.") from None
        bar = tqdm(desc=f"upscale ({name})", unit="tile", total=None)

        def on_tile(done: int, total: int) -> None:
            bar.total, bar.n = total, done
            bar.refresh()

        try:
            size = image_size(data, field="image", formats=IMAGE_FORMATS)
            ask = UpscaleAsk(factor=factor, width=options["width"], height=options["height"])
            target, crop = upscale_target(size, ask)  # checked before any pixel is decoded
            image = engine.to_rgb(decode_image(data, field="image", formats=IMAGE_FORMATS))
            result, ran = upscale_image(image, target, name, model_path=model_path, on_tile=on_tile)
            if crop:
                result = upscale_middle(result, (options["width"], options["height"]))
        except UploadError as exc:
            raise CommandError(exc.message) from None
        except (engine.EngineError, ClientError) as exc:
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        parameters = {"upscale": {"width": result.width, "height": result.height, "factor": factor}}
        parameters.update(ran)
        options["out"].write_bytes(engine.png_with_parameters(result, parameters))
        self.stdout.write(f"{options['out']} ({result.width}x{result.height}, {name})")
