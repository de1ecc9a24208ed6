"""``manage.py upscale``: one picture upscaled in this process, with a progress bar per tile."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from inpainting import engine
from inpainting.engine.upscale import DEFAULT_FACTOR
from inpainting.errors import ClientError
from inpainting.services.upscale import UpscaleAsk, upscale_image, upscale_plans
from inpainting.services.upscalers import library_upscaler_checked
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
        parser.add_argument("--factor", type=float, help=f"1 to 4 (default {DEFAULT_FACTOR:g})")
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
            help="lanczos (default), nearest, an upscaler of the library (GET /api/upscalers; "
            "with or without its suffix), or the path of a .safetensors / weights-only .pth "
            "super-resolution model",
        )

    def handle(self, *args, **options):
        width, height, factor = options["width"], options["height"], options["factor"]
        if factor is not None and (width or height):
            raise CommandError("Give --factor, or --width and / or --height, not both.")
        if factor is None and not (width or height):
            factor = DEFAULT_FACTOR
        try:
            data = options["image"].read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {options['image']}: {exc.strerror}.") from None
        bar = tqdm(desc="upscale", unit="tile", total=None)

        def on_tile(done: int, total: int) -> None:
            bar.total, bar.n = total, done
            bar.refresh()

        try:
            path = Path(options["upscaler"])
            model_path = path if path.suffix and path.is_file() else None
            name = path.name if model_path else library_upscaler_checked(options["upscaler"])
            size = image_size(data, field="image", formats=IMAGE_FORMATS)
            ask = UpscaleAsk(factor=factor, width=width, height=height)
            (plan,) = upscale_plans([size], ask)  # before any pixel is decoded
            image = engine.to_rgb(decode_image(data, field="image", formats=IMAGE_FORMATS))
            result, ran = upscale_image(image, plan, name, model_path=model_path, on_tile=on_tile)
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
