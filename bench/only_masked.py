"""Only-masked inpainting: a 4096 x 4096 image with a 256 x 256 mask against a 512 x 512 image
with the same mask, on the classical engine and on the tiny diffusers model.

    .venv/bin/python bench/only_masked.py [--repeats 3]

Prints a table of median seconds and the ratio (SPEC §8: under 2). The engine runs in-process,
exactly as a worker calls it (``run_inpaint`` with ``inpaint_area=auto``).
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

from inpainting.engine import EngineConfig, InpaintRequest, MaskOptions, get_backend, run_inpaint  # noqa: E402
from inpainting.testing.tiny_model import write_tiny_inpaint_model  # noqa: E402


def photo_like(size: int, seed: int = 0) -> Image.Image:
    """A textured test image: gradients plus noise, so PatchMatch has real work to do."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([x * 200, y * 200, (1 - x) * 150], axis=-1)
    noise = rng.normal(0, 12, (size, size, 3))
    return Image.fromarray(np.clip(base + noise + 20, 0, 255).astype(np.uint8), "RGB")


def request_for(size: int, **extra) -> InpaintRequest:
    mask = Image.new("L", (size, size), 0)
    start = size // 2 - 128
    mask.paste(255, (start, start, start + 256, start + 256))
    return InpaintRequest(
        image=photo_like(size),
        mask=mask,
        mask_options=MaskOptions(mode="white_inpaints"),
        seed=1,
        **extra,
    )


def median_seconds(request: InpaintRequest, backend, repeats: int) -> float:
    run_inpaint(request, backend)  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run_inpaint(request, backend)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        model = write_tiny_inpaint_model(Path(folder) / "tiny")
        engines = {
            "classical (hybrid)": (get_backend("classical", EngineConfig()), {}),
            "diffusers (tiny model, 10 steps @128)": (
                get_backend(
                    "diffusers",
                    EngineConfig(
                        load_diffusers=True, model=str(model), device="cpu", working_size=128
                    ),
                ),
                {"prompt": "a rose", "num_inference_steps": 10, "denoising_strength": 1.0},
            ),
        }
        rows = []
        for name, (backend, extra) in engines.items():
            small = median_seconds(request_for(512, **extra), backend, args.repeats)
            large = median_seconds(request_for(4096, **extra), backend, args.repeats)
            rows.append((name, small, large, large / small))
    print(f"{'engine':34} {'512x512 (s)':>12} {'4096x4096 (s)':>14} {'ratio':>7}")
    for name, small, large, ratio in rows:
        print(f"{name:34} {small:12.3f} {large:14.3f} {ratio:7.2f}")
    worst = max(row[3] for row in rows)
    print(f"worst ratio {worst:.2f} (target < 2)")
    return 0 if worst < 2 else 1


if __name__ == "__main__":
    sys.exit(main())
