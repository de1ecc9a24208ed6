"""Time an upscale of a 1024 px photo to 4096 px as the worker runs it
(``services.upscale.upscale_image``: the defaults, 256 px tiles overlapping by 16 px), with
Lanczos and with a Real-ESRGAN of random weights: the tiny one of the tests (8 features, 1
block) and RealESRGAN_x4plus's own size (64 features, 23 blocks: the same arithmetic as the
real model). Usage: ``.venv/bin/python scripts/bench_upscale.py [lanczos|tiny|x4plus ...]``."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dreamlayer_site.settings")
os.environ.setdefault("DJANGO_DEBUG", "true")
django.setup()

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import data as skimage_data  # noqa: E402

from inpainting import engine  # noqa: E402
from inpainting.services.upscale import upscale_image  # noqa: E402
from inpainting.testing.tiny_upscaler import write_tiny_real_esrgan  # noqa: E402

SIZES = {"tiny": (8, 1), "x4plus": (64, 23)}


def main(names: list[str]) -> None:
    photo = Image.fromarray(skimage_data.astronaut()).resize((1024, 1024), Image.LANCZOS)
    target = (4096, 4096)
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            path = None
            if name in SIZES:
                features, blocks = SIZES[name]
                path = write_tiny_real_esrgan(
                    Path(folder) / f"{name}.safetensors", num_filters=features, num_blocks=blocks
                )
            steps: list[int] = []
            started = time.perf_counter()
            out, ran = upscale_image(
                photo,
                target,
                "lanczos" if path is None else path.name,
                model_path=path,
                on_tile=lambda done, total, seen=steps: seen.append(done),
            )
            upscaled = time.perf_counter() - started
            png = engine.encode_png(out)
            total = time.perf_counter() - started
            print(
                f"{name}: {photo.size} -> {out.size}, {len(steps)} steps, "
                f"upscale {upscaled:.2f} s, "
                f"with the PNG ({len(png) / 1e6:.1f} MB) {total:.2f} s; {ran}; "
                f"mean {np.asarray(out).mean():.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main(sys.argv[1:] or ["lanczos", "tiny", "x4plus"])
