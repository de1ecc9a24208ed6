"""DreamLayer's diffusers backend against a stock ``StableDiffusionInpaintPipeline`` call, in one
run, on the same model, inputs and seed.

    .venv/bin/python bench/diffusers_vs_stock.py                  # CPU, tiny model (CI-sized)
    .venv/bin/python bench/diffusers_vs_stock.py --model sd15     # SD 1.5 architecture

Defaults follow SPEC §8: on CUDA 512 x 512 and 50 steps, on CPU 256 x 256 and 5 steps (the
tiny model: 64 x 64 and 5 steps). The stock pipeline runs with its defaults (fp16 on CUDA, fp32
on CPU); DreamLayer runs as a worker runs it (``run_inpaint`` with ``DiffusersBackend``, the
whole canvas, the same size, so neither side resizes). Each side is warmed up once, then timed
``--runs`` times; prints the median seconds per image, images per second and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inpainting.engine import InpaintRequest, MaskOptions, run_inpaint  # noqa: E402
from inpainting.engine.backends.diffusers import DiffusersBackend  # noqa: E402
from inpainting.engine.backends.loading import resolve_device  # noqa: E402
from inpainting.testing.tiny_model import (  # noqa: E402
    write_sd15_architecture_model,
    write_tiny_inpaint_model,
)

PROMPT = "a red rose"


def inputs(size: int) -> tuple[Image.Image, Image.Image]:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    mask = Image.new("L", (size, size), 0)
    mask.paste(255, (size // 4, size // 4, 3 * size // 4, 3 * size // 4))
    return Image.fromarray(pixels, "RGB"), mask


def timed(run, runs: int) -> float:
    run()  # warm-up: first-call allocations, kernel selection, compilation
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def stock_runner(folder: Path, device: str, image, mask, size: int, steps: int):
    import torch
    from diffusers import StableDiffusionInpaintPipeline

    dtype = torch.float16 if device == "cuda" else torch.float32
    pipe = StableDiffusionInpaintPipeline.from_pretrained(
        folder, dtype=dtype, safety_checker=None, requires_safety_checker=False
    ).to(device)
    pipe.set_progress_bar_config(disable=True)

    def run():
        pipe(
            prompt=PROMPT,
            image=image,
            mask_image=mask,
            height=size,
            width=size,
            num_inference_steps=steps,
            generator=torch.Generator("cpu").manual_seed(1),
        )
        if device == "cuda":
            torch.cuda.synchronize()

    return run


def dreamlayer_runner(
    folder: Path, device: str, image, mask, size: int, steps: int, compile_unet: bool
):
    import torch

    backend = DiffusersBackend(
        model=str(folder), device=device, working_size=size, compile_unet=compile_unet
    )
    backend.load()
    request = InpaintRequest(
        image=image,
        mask=mask,
        prompt=PROMPT,
        mask_options=MaskOptions(mode="white_inpaints"),
        num_inference_steps=steps,
        denoising_strength=1.0,
        guidance_scale=7.5,
        seed=1,
        inpaint_area="whole",
    )

    def run():
        run_inpaint(request, backend)
        if device == "cuda":
            torch.cuda.synchronize()

    return run


def model_arguments(doc: str) -> argparse.ArgumentParser:
    """The options the diffusers benchmarks share."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--model", choices=("tiny", "sd15"), default="tiny")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=int, help="default: 512 on CUDA, else 256 (tiny: 64)")
    parser.add_argument("--steps", type=int, help="default: 50 on CUDA, else 5")
    parser.add_argument("--runs", type=int, default=3)
    return parser


def model_settings(args: argparse.Namespace) -> tuple[str, int, int]:
    """The device, image size and step count, with SPEC §8's defaults."""
    device = resolve_device(args.device)
    cuda = device == "cuda"
    size = args.size or (512 if cuda else 64 if args.model == "tiny" else 256)
    steps = args.steps or (50 if cuda else 5)
    return device, size, steps


def write_model(name: str, folder: Path) -> Path:
    write = write_tiny_inpaint_model if name == "tiny" else write_sd15_architecture_model
    return write(folder / name)


def main() -> int:
    parser = model_arguments(__doc__)
    parser.add_argument("--compile", action="store_true", help="as INPAINT_COMPILE=true")
    args = parser.parse_args()
    device, size, steps = model_settings(args)
    image, mask = inputs(size)
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_model(args.model, Path(tmp))
        # DreamLayer first: it keeps its pipeline loaded between jobs, as a worker does.
        ours = timed(
            dreamlayer_runner(folder, device, image, mask, size, steps, args.compile), args.runs
        )
        stock = timed(stock_runner(folder, device, image, mask, size, steps), args.runs)
    compiled = ", torch.compile" if args.compile else ""
    print(f"{args.model} model, {device}{compiled}, {size} x {size}, {steps} steps, "
          f"median of {args.runs}:")  # fmt: skip
    print(f"{'':26}{'s / image':>10}{'images / s':>12}")
    for name, seconds in (("stock diffusers pipeline", stock), ("DreamLayer backend", ours)):
        print(f"{name:26}{seconds:10.3f}{1 / seconds:12.2f}")
    print(f"speed-up (stock / DreamLayer): {stock / ours:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
