"""Where the worker's eager path gains or loses against the stock pipeline, part by part, for
one family on one pipeline (the GPU kit's random weights in the published configuration):

- ``stock``: the stock pipeline's call, as built;
- ``worker``: the worker's path (``run_inpaint`` through ``DiffusersBackend``) on it after
  ``adopt_pipeline`` (the ``gpu`` plan's fast path: channels-last UNet and VAE, fused QKV);
- ``stock+fast``: the stock call on that same prepared pipeline (the fast path's effect on
  the pipeline call alone; ``worker`` against it is the worker's own work: prompts, masks,
  the result);
- ``stock+fused``: channels-last taken back (contiguous UNet and VAE), QKV still fused;
- ``stock-again``: QKV unfused too: the stock pipeline again (a check of the noise);
- ``worker-plain``: the worker's path on that plain pipeline (no fast path at all).

Each: median seconds of ``--runs`` after a warm-up, at each of ``--steps``. A diagnosis for
the GPU kit's "the default path is not slower than stock" (docs/performance.md):

    python3 bench/fast_path_parts.py --family sd15 --steps 50,10 --out $OUT
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import gpu_kit  # noqa: E402
from inpainting.engine import memory, run_inpaint  # noqa: E402
from inpainting.engine.backends import loading  # noqa: E402
from inpainting.engine.backends.diffusers import DiffusersBackend  # noqa: E402
from inpainting.engine.families import FAMILIES  # noqa: E402


def measure(args) -> dict:
    device = args.device
    real = device == "cuda"
    name = args.family
    size = gpu_kit.RUNS[name].size if real else gpu_kit.TINY_SIZE
    image, mask = gpu_kit.inputs(size)
    steps_list = [int(s) for s in args.steps.split(",")]
    rows: dict[str, dict[int, float]] = {}
    with tempfile.TemporaryDirectory() as root:
        folder = gpu_kit.model_folder(name, real, Path(root))
        pipe = gpu_kit.build_pipeline(folder, name, device, gpu_kit.dtype_of(name, device))
        pipe.set_progress_bar_config(disable=True)

        def stock(steps):
            return lambda: gpu_kit.stock_call(pipe, name, image, mask, size, steps)

        def worker(steps):
            backend = DiffusersBackend(model=str(folder), device=device, working_size=size)
            request = gpu_kit.request_for(name, image, mask, steps)
            return lambda: run_inpaint(request, backend)

        def time_all(label, make):
            rows[label] = {
                steps: gpu_kit.timed(make(steps), args.runs, device).seconds for steps in steps_list
            }
            print(label, rows[label], flush=True)

        time_all("stock", stock)
        loading.adopt_pipeline(str(folder), pipe, device, size=size, memory_plan=memory.GPU)
        time_all("worker", worker)
        time_all("stock+fast", stock)
        if FAMILIES[name].denoiser == "unet":
            pipe.unet.to(memory_format=torch.contiguous_format)
            pipe.vae.to(memory_format=torch.contiguous_format)
        time_all("stock+fused", stock)
        if getattr(pipe, "fusing_unet", False) or getattr(pipe, "fusing_vae", False):
            pipe.unfuse_qkv_projections()  # fused on CUDA only
        time_all("stock-again", stock)
        time_all("worker-plain", worker)
    return {
        "family": name,
        "device": torch.cuda.get_device_name() if real else device,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "size": size,
        "runs": args.runs,
        "seconds": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", default="sd15", choices=sorted(gpu_kit.RUNS))
    parser.add_argument("--steps", default="50,10")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    result = measure(args)
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"fast-path-{args.family}.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
