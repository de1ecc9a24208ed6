"""Batching across jobs: images per second when 1, 2, 4 and 8 queued jobs of one size and step
count share one model batch, as a worker runs them (``run_inpaint_batch``, the diffusers
backend, each job with its own prompt, seed and mask).

    .venv/bin/python bench/batching.py                  # CPU, tiny model (CI-sized)
    .venv/bin/python bench/batching.py --model sd15     # SD 1.5 architecture, random weights

Defaults: on CUDA 512 x 512 and 50 steps; on CPU 256 x 256 and 5 steps (the tiny model 64 x 64).
Each batch size is warmed up once, then timed ``--runs`` times (median).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.diffusers_vs_stock import (  # noqa: E402
    inputs,
    model_arguments,
    model_settings,
    timed,
    write_model,
)
from inpainting.engine import InpaintRequest, MaskOptions, run_inpaint_batch  # noqa: E402
from inpainting.engine.backends.diffusers import DiffusersBackend  # noqa: E402

PROMPTS = ("a red rose", "a cat", "a tree", "the sky", "a red cat", "a rose tree", "a cat sky")


def jobs(count: int, size: int, steps: int) -> list[InpaintRequest]:
    image, _ = inputs(size)
    requests = []
    for index in range(count):
        box = Image.new("L", (size, size), 0)
        offset = index * size // 32  # each job its own hole
        box.paste(255, (size // 4 + offset, size // 4, size // 2 + offset, 3 * size // 4))
        requests.append(
            InpaintRequest(
                image=image,
                mask=box,
                prompt=PROMPTS[index % len(PROMPTS)],
                mask_options=MaskOptions(mode="white_inpaints"),
                num_inference_steps=steps,
                denoising_strength=1.0,
                seed=index,
                inpaint_area="whole",
            )
        )
    return requests


def seconds_for(backend, requests: list[InpaintRequest], runs: int, cuda: bool) -> float:
    def run():
        outcomes = run_inpaint_batch(
            requests,
            backend,
            progresses=[lambda event: None] * len(requests),
            cancel_checks=[lambda: False] * len(requests),
        )
        failed = [o for o in outcomes if isinstance(o, Exception)]
        if failed:
            raise failed[0]
        if cuda:
            import torch

            torch.cuda.synchronize()

    return timed(run, runs)


def main() -> int:
    parser = model_arguments(__doc__)
    parser.add_argument("--jobs", default="1,2,4,8")
    args = parser.parse_args()
    device, size, steps = model_settings(args)
    cuda = device == "cuda"
    counts = [int(n) for n in args.jobs.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_model(args.model, Path(tmp))
        backend = DiffusersBackend(model=str(folder), device=device, working_size=size)
        backend.load()
        rates = {n: n / seconds_for(backend, jobs(n, size, steps), args.runs, cuda) for n in counts}
    print(f"{args.model} model, {device}, {size} x {size}, {steps} steps, median of {args.runs}:")
    print(f"{'jobs':>5}{'images / s':>12}{'vs 1 job':>10}")
    for count, rate in rates.items():
        print(f"{count:5d}{rate:12.2f}{rate / rates[counts[0]]:9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
