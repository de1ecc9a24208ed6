"""Soft against hard inpainting on a real photo, for the docs' picture (docs/soft/).

    .venv/bin/python bench/soft_vs_hard.py                   # the tiny random model (CPU)
    .venv/bin/python bench/soft_vs_hard.py --model /path/to/sd15-inpainting --device cuda

The mask is a white core fading out over a wide band (as a soft brush paints it) on
scikit-image's "chelsea". Both sides run as a worker runs a job (``run_inpaint``), with the same
seed and the defaults (mask_blur 4), once with ``soft`` and once without; the picture puts the
input, the mask and both results side by side, and prints how far each band moved from the
input. With the tiny model the weights are random: the picture shows where and how strongly
each pixel changes, not what a real model paints.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw
from skimage import data as skimage_data

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inpainting.engine import InpaintRequest, MaskOptions, run_inpaint  # noqa: E402
from inpainting.engine.backends.diffusers import DiffusersBackend  # noqa: E402
from inpainting.engine.backends.loading import resolve_device  # noqa: E402
from inpainting.testing.tiny_model import write_tiny_inpaint_model  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "docs" / "soft"


def soft_mask(size: tuple[int, int]) -> Image.Image:
    width, height = size
    core = Image.new("L", size, 0)
    ImageDraw.Draw(core).ellipse((170, 120, 300, 220), fill=255)
    values = cv2.GaussianBlur(np.asarray(core, np.float32), (0, 0), 18)
    return Image.fromarray(np.clip(values * 1.4, 0, 255).astype(np.uint8), "L")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="an SD 1.5 inpainting diffusers folder (default: tiny)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    folder = args.model or str(write_tiny_inpaint_model(Path(tempfile.mkdtemp()) / "tiny"))
    backend = DiffusersBackend(folder, resolve_device(args.device), working_size=512)
    image = Image.fromarray(skimage_data.chelsea())
    mask = soft_mask(image.size)
    results = {}
    for soft in (False, True):
        request = InpaintRequest(
            image=image,
            mask=mask,
            prompt="a red wool scarf",
            num_inference_steps=args.steps,
            seed=11,
            mask_options=MaskOptions(mode="white_inpaints"),
            inpaint_area="whole",
            soft=soft,
        )
        results[soft] = np.asarray(run_inpaint(request, backend).images[0])
    original, values = np.asarray(image), np.asarray(mask)
    for low, high in ((1, 64), (64, 192), (192, 255), (255, 256)):
        band = (values >= low) & (values < high)
        moved = [np.abs(results[s][band].astype(float) - original[band]).mean() for s in (0, 1)]
        print(f"mask {low:3d}-{high - 1:3d}: hard moved {moved[0]:5.1f}, soft {moved[1]:5.1f}")
    OUT.mkdir(parents=True, exist_ok=True)
    mask_rgb = np.stack([values] * 3, axis=-1)
    strip = np.concatenate([original, mask_rgb, results[False], results[True]], axis=1)
    Image.fromarray(strip).save(OUT / "chelsea-hard-soft.png")
    print(f"wrote {OUT / 'chelsea-hard-soft.png'} (input, mask, hard, soft)")


if __name__ == "__main__":
    main()
