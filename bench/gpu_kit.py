"""The GPU kit: every family timed against its stock diffusers pipeline, batching, a one-step
profile, a whole job through the stack and the memory plans, in one command, for the minutes a
GPU is lent.

    .venv/bin/python bench/gpu_kit.py                  # CUDA: the published sizes
    .venv/bin/python bench/gpu_kit.py --size tiny      # the tiny test models (the CPU default)
    .venv/bin/python bench/gpu_kit.py --dry-run        # imports all, builds every published
                                                       # configuration on the meta device
    make bench-gpu                                     # the first line, results in build/gpu-kit

Writes ``gpu-kit.md`` (one table a part) and ``gpu-kit.json`` (every figure) into ``--out``
(default ``build/gpu-kit``), after each part, so a run stopped at its time limit keeps what it
measured. A family or the stack part that fails (out of GPU memory, say) is named under "Not
measured" and the run goes on; the exit code is then 1. ``--budget-seconds`` (default 420)
bounds the whole run: a step whose estimate does not fit what is left is not started, the one
running at the deadline is cut (``Budget``), and both are named under "Not run within the time
budget" (the exit code stays 0: what was asked fitted or was said). Parts (``--parts``), run in
the order it names them (the first three together, on one pipeline a family; by default in
this order, the memory plans last: the slowest):

- ``families``: for each family (SD 1.5 512 px 50 steps, SDXL 1024 px 30, FLUX.1 Fill 1024 px
  28, FLUX.2 [klein] 4B 1024 px 4, Qwen-Image-Edit 1024 px 40, FLUX.1 Kontext 1024 px 28,
  Bria FIBO 2.0 1024 px 30, Qwen-Image-2.1 1024 px 40, FLUX.3 [klein] 1024 px 16), one
  pipeline with random weights in the published configuration (``bench/published_configs.py``)
  built on the device in the family's dtype (fp16 SD, bf16 the others): the stock inpainting
  pipeline called with the worker's settings (``stock_settings``) and nothing of DreamLayer's
  around it, then the same pipeline as a worker runs it (``run_inpaint``
  through ``DiffusersBackend``, the whole canvas at the same size: ``adopt_pipeline`` prepares
  it as ``load_pipeline`` prepares a loaded one) under the all-on-GPU memory plan (``gpu``,
  asked by name: the planner would choose from the memory the kit's own pipeline leaves free),
  the plan used recorded in each row; eager, and compiled (``torch.compile`` of the denoiser;
  ``INPAINT_COMPILE``) where ``--compile`` (the CUDA default); median of ``--runs`` after a
  warm-up; peak GPU memory of each side; compiled, each side's first call, the worker's
  compile at its start and the compiled picture against the eager one; then the worker's
  path with CUDA graphs of its denoiser at that size (``CUDA_GRAPH_SIZES``: the capture at
  the model's load timed, the picture's largest difference from eager; without CUDA the row
  says why it ran eager) and in the fast tier where the family has one (``speed: "fast"``:
  its time and PSNR against eager).
- ``batching``: images/s at 1, 2, 4 and 8 jobs in one batch (SD 1.5 and SDXL), as a worker
  batches queued jobs (``run_inpaint_batch``), under the ``gpu`` plan.
- ``profile``: one denoising step of the worker path under ``torch.profiler``: kernel launches
  a step and the share of the step the GPU is busy (on the CPU: operators a step).
- ``stack``: the Procfile's processes (``python -m dreamlayer_site.stack``: daphne, the Celery
  workers) with SQLite and the embedded Redis, random SD 1.5 and SDXL models in the library,
  ``POST /api/img2img`` waited for, its time against the same job in this process (the
  stack's share), then 4 users at once; the worker told the ``gpu`` plan, as above.
- ``plans``: each other memory plan the planner offers for the family
  (``inpainting/engine/memory.py``: fp8 storage, the text encoders offloaded, both, the whole
  model offloaded, sequential), on a fresh pipeline each: seconds a picture, peak GPU memory,
  and the time against the ``gpu`` plan's (the families part's). The CPU runs every plan but
  ``fp8`` as ``cpu``: the row says which plan ran.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import inspect
import io
import json
import os
import pkgutil
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import diffusers
import django
import numpy as np
import requests
import torch
import transformers
from PIL import Image
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.published_configs import write_published  # noqa: E402
from inpainting.engine import (  # noqa: E402
    InpaintRequest,
    MaskOptions,
    memory,
    run_inpaint,
    run_inpaint_batch,
)
from inpainting.engine.backends import loading, modular, picture_area  # noqa: E402
from inpainting.engine.backends.diffusers import DiffusersBackend  # noqa: E402
from inpainting.engine.backends.loading import (  # noqa: E402
    adopt_pipeline,
    denoiser_of,
    resolve_device,
)
from inpainting.engine.backends.qwen_vl import processor_parts  # noqa: E402
from inpainting.engine.families import FAMILIES, index_file  # noqa: E402
from inpainting.testing import tiny_flow, tiny_model  # noqa: E402

PROMPT = "a red rose on a wooden table"
PARTS = ("families", "batching", "profile", "stack", "plans")
#: The parts run on one pipeline a family, built once.
FAMILY_PARTS = ("families", "batching", "profile")
BATCHES = (1, 2, 4, 8)
STACK_USERS = 4
#: The whole run's time (``--budget-seconds``): with the wheels' install, one 10-minute call
#: of the device tool (docs/performance.md).
BUDGET_SECONDS = 420
#: The tiny size: pictures and steps every part runs at on the CPU.
TINY_SIZE, TINY_STEPS = 64, 2


@dataclass(frozen=True)
class Run:
    """A family as the kit times it: its tiny test folder's writer, the published size and
    the step count its publisher's examples use."""

    write_tiny: Any
    size: int
    steps: int


RUNS = {
    "sd15": Run(tiny_model.write_tiny_inpaint_model, 512, 50),
    "sdxl": Run(tiny_model.write_tiny_sdxl_inpaint_model, 1024, 30),
    "flux": Run(tiny_flow.write_tiny_flux_fill_model, 1024, 28),
    "flux2-klein": Run(tiny_flow.write_tiny_flux2_klein_model, 1024, 4),
    "qwen-edit": Run(tiny_flow.write_tiny_qwen_edit_model, 1024, 40),
    "flux-kontext": Run(tiny_flow.write_tiny_flux_kontext_model, 1024, 28),
    "fibo2": Run(tiny_flow.write_tiny_fibo2_model, 1024, 30),
    "qwen-image-21": Run(tiny_flow.write_tiny_qwen_image21_model, 1024, 40),
    "flux3-klein": Run(tiny_flow.write_tiny_flux3_klein_model, 1024, 16),
}
BATCH_FAMILIES = ("sd15", "sdxl")


def size_and_steps(name: str, args) -> tuple[int, int]:
    """The picture's side and the steps: the family's (published size) or the tiny ones, or
    what ``--image-size`` and ``--steps`` say."""
    size, steps = (RUNS[name].size, RUNS[name].steps) if args.real else (TINY_SIZE, TINY_STEPS)
    return args.image_size or size, args.steps or steps


STACK_FAMILIES = ("sd15", "sdxl")


class OverBudget(BaseException):
    """The time budget ran out in a step (a ``BaseException``, as Ctrl-C: the engine's own
    ``except Exception`` does not take it for a failure of the model)."""


class Budget:
    """``--budget-seconds`` for the whole run: ``start`` says whether a step fits (its
    estimate against what is left) and names it in ``missed`` where it does not; ``cut`` runs
    a block until the deadline (SIGALRM, the main thread) and names the step it cut."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds or None
        self.started = time.monotonic()
        self.missed: list[str] = []
        self.doing = ""
        #: A family's seconds a picture on the worker's path, once measured: the estimates.
        self.per_picture: dict[str, float] = {}

    def left(self) -> float:
        if self.seconds is None:
            return float("inf")
        return self.started + self.seconds - time.monotonic()

    def used(self) -> float:
        return time.monotonic() - self.started

    def start(self, what: str, estimate: float = 0.0) -> bool:
        left = self.left()
        if left > estimate:
            self.doing = what
            return True
        needs = f"needs about {estimate:.0f} s, " if estimate else ""
        self.missed.append(f"{what}: not started ({needs}{max(left, 0):.0f} s left)")
        return False

    @contextlib.contextmanager
    def cut(self, what: str):
        """Runs the block of the step ``what`` until the deadline, and names what it cut: the
        part the block started last, else ``what``. A block entered with no time left runs
        without an alarm: each part in it asks ``start``, which names it as not started (an
        alarm of a millisecond went off after such a part had said so, and named the part
        an earlier block had cut a second time: seen once in the test suite, on a busy
        machine)."""
        self.doing = ""
        if self.seconds is None or self.left() <= 0:
            yield
            return

        def alarm(signum, frame):
            raise OverBudget

        previous = signal.signal(signal.SIGALRM, alarm)
        try:
            try:
                signal.setitimer(signal.ITIMER_REAL, max(self.left(), 0.001))
                yield
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except OverBudget:
            self.missed.append(f"{self.doing or what}: cut at the deadline")
        finally:
            signal.signal(signal.SIGALRM, previous)


@dataclass
class Results:
    """Everything measured, written after each part (``write``)."""

    device: str
    gpu: str | None
    size: str
    started: str
    command: str
    budget_s: float | None = None
    elapsed_s: float = 0.0
    families: list[dict] = field(default_factory=list)
    batching: list[dict] = field(default_factory=list)
    profile: list[dict] = field(default_factory=list)
    stack: list[dict] = field(default_factory=list)
    plans: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    #: What the time budget left out or cut (``Budget.missed``): not a failure.
    over_budget: list[str] = field(default_factory=list)

    def write(self, out: Path) -> None:
        # The same job in this process (the families part's), whichever part ran first.
        for row in self.stack:
            row["in_process_s"] = next(
                (r["dreamlayer_s"] for r in self.families if r["family"] == row["family"]
                 and r["size"] == row["size"] and r["steps"] == row["steps"]
                 and "dreamlayer_s" in r),
                None,
            )  # fmt: skip
        out.mkdir(parents=True, exist_ok=True)
        (out / "gpu-kit.json").write_text(json.dumps(asdict(self), indent=2))
        (out / "gpu-kit.md").write_text(markdown(self))


# ----- models -----------------------------------------------------------------------------
def model_folder(name: str, real: bool, root: Path) -> Path:
    """The family's folder: its tiny test model, or (``real``) its published configuration
    (no weights)."""
    tiny = RUNS[name].write_tiny(root / f"{name}-tiny")
    return write_published(name, tiny, root / name) if real else tiny


#: A tiny model's VAE for a large side (``--image-size`` over the tiny size, on the CPU): the
#: published latent scale (8: four blocks) and no attention in its middle block. The tiny
#: test VAE scales by 2 with attention over every latent: a 1024 px job's VAE attended over
#: 262,144 tokens, about 6 minutes a job on 2 cores for a model that is tiny only in name.
LARGE_SIDE_TINY_VAE = dict(
    block_out_channels=[8, 16, 32, 32],
    down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4,
    mid_block_add_attention=False,
)


def for_large_side(folder: Path) -> Path:
    """A tiny model's ``folder`` made to run a large side in seconds a step (its VAE as
    ``LARGE_SIDE_TINY_VAE``; the denoiser then works on the published latent size)."""
    config = folder / "vae" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), **LARGE_SIDE_TINY_VAE}))
    return folder


def build_pipeline(folder: Path, name: str, device: str, dtype: Any) -> Any:
    """The family's inpainting pipeline with random weights from ``folder``'s configuration,
    each model built on ``device`` (``meta``: no memory) in ``dtype``; tokenizers, schedulers
    and processors read from their files."""
    family = FAMILIES[name]
    pipeline = getattr(diffusers, family.pipeline)
    index = json.loads(index_file(folder).read_text())
    if family.modular:  # its models here, its processors and blocks by ``modular.load``
        wanted = {part for part, spec in index.items() if (folder / part / "config.json").is_file()}
    else:
        wanted = set(inspect.signature(pipeline.__init__).parameters) - {"self"}
    parts: dict[str, Any] = processor_parts(folder) if family.vl_processor else {}
    default_dtype = torch.get_default_dtype()
    for part, spec in index.items():
        if part.startswith("_") or part not in wanted or part in parts:
            continue
        if not isinstance(spec, list) or spec[0] is None:
            continue
        cls = getattr(importlib.import_module(spec[0]), spec[1])
        sub = folder / part
        if isinstance(cls, type) and issubclass(cls, torch.nn.Module):
            torch.set_default_dtype(dtype)
            try:
                with torch.device(device):
                    if spec[0] == "diffusers":
                        model = cls.from_config(cls.load_config(sub))
                    else:
                        config = transformers.AutoConfig.from_pretrained(sub)
                        model = cls._from_config(config, dtype=dtype)
            finally:
                torch.set_default_dtype(default_dtype)
            parts[part] = model.eval()
        else:
            parts[part] = cls.from_pretrained(sub)
    if family.modular:
        return modular.load(folder, family, dtype, parts=parts)
    for part in wanted - set(parts):
        if part == "requires_safety_checker":
            parts[part] = False
        elif inspect.signature(pipeline.__init__).parameters[part].default is inspect._empty:
            parts[part] = None
    return pipeline(**parts)


def parameters(pipe: Any) -> dict[str, int]:
    return {
        name: sum(p.numel() for p in part.parameters())
        for name, part in pipe.components.items()
        if isinstance(part, torch.nn.Module)
    }


def inputs(size: int) -> tuple[Image.Image, Image.Image]:
    """A textured picture and a centred square to repaint (white = repaint)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([x * 200, y * 200, (1 - x) * 150], axis=-1)
    pixels = np.clip(base + rng.normal(0, 12, (size, size, 3)) + 20, 0, 255).astype(np.uint8)
    mask = Image.new("L", (size, size), 0)
    mask.paste(255, (size // 4, size // 4, 3 * size // 4, 3 * size // 4))
    return Image.fromarray(pixels, "RGB"), mask


# ----- timing -----------------------------------------------------------------------------
def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


@dataclass
class Timing:
    seconds: float  # the median of the timed calls
    peak_bytes: int | None  # peak GPU memory over the timed calls
    first_s: float  # the warm-up call: where a compiled side compiles
    output: Any  # what the last call returned


def timed(run, runs: int, device: str) -> Timing:
    """Median seconds of ``runs`` calls after a warm-up (itself timed), the peak GPU memory
    (bytes) and the last call's answer."""
    started = time.perf_counter()
    output = run()
    synchronize(device)
    first_s = time.perf_counter() - started
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        output = run()
        synchronize(device)
        times.append(time.perf_counter() - started)
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else None
    return Timing(statistics.median(times), peak, first_s, output)


def picture_distance(one: Image.Image, other: Image.Image) -> dict[str, float]:
    """How far two pictures of the same job are apart: the largest difference of a value (0 to
    255) and the share of values more than one level apart."""
    difference = np.abs(np.asarray(one, np.int16) - np.asarray(other, np.int16))
    return {"max_level": int(difference.max()), "share_over_1": float((difference > 1).mean())}


def request_for(name: str, image, mask, steps: int, seed: int = 1, prompt: str = PROMPT):
    caps = FAMILIES[name].capabilities
    return InpaintRequest(
        image=image,
        mask=mask,
        prompt=prompt,
        mask_options=MaskOptions(mode="white_inpaints"),
        num_inference_steps=steps,
        denoising_strength=1.0,
        guidance_scale=caps.default_guidance,
        seed=seed,
        inpaint_area="whole",
    )


def dtype_of(name: str, device: str) -> Any:
    return getattr(torch, FAMILIES[name].cuda_dtype) if device == "cuda" else torch.float32


def family_part(name: str, args, root: Path, results: Results, budget: Budget) -> None:
    """The family's pipeline built once; the parts asked for run on it, each where the
    budget has room for it."""
    size, steps = size_and_steps(name, args)
    dtype = dtype_of(name, args.device)
    if not budget.start(f"{name}: " + ", ".join(p for p in FAMILY_PARTS if p in args.parts)):
        return
    folder = model_folder(name, args.real, root)
    pipe = build_pipeline(folder, name, args.device, dtype)
    pipe.set_progress_bar_config(disable=True)
    if "families" in args.parts and budget.start(f"{name}: families"):
        stock_against_worker(name, folder, pipe, size, steps, dtype, args, results, budget)
    if name in BATCH_FAMILIES and "batching" in args.parts:
        batching_part(name, folder, pipe, size, steps, args, results, budget)
    if "profile" in args.parts and budget.start(f"{name}: profile", estimate(budget, name, 1)):
        profile_part(name, folder, pipe, size, args, results)
    del pipe
    release(args.device)


def estimate(budget: Budget, name: str, pictures: float, runs: int = 0) -> float:
    """Seconds for ``pictures`` pictures, ``runs`` timed calls and their warm-up (0 where the
    family's time is not measured yet: the step starts while any time is left)."""
    return budget.per_picture.get(name, 0.0) * pictures * (1 + runs)


def stock_settings(name: str, size: int) -> dict[str, Any]:
    """What the stock call is told so that it does the worker's work, no less (the pipelines'
    own defaults differ: Qwen's strength 0.6 runs 60 % of the steps, Kontext's resizes to a
    megapixel): the whole strength, the family's guidance under its argument's name, its call
    arguments and its area, and Qwen's one-space negative prompt (true CFG, as the worker
    runs it)."""
    family = FAMILIES[name]
    settings = {
        **({"strength": 1.0} if family.takes_strength else {}),
        family.guidance_argument: family.capabilities.default_guidance,
        **family.call_arguments,
    }
    if family.area_argument:
        settings[family.area_argument] = size * size
    if family.edits and family.capabilities.negative_prompt:
        settings["negative_prompt"] = " "
    return settings


def stock_call(pipe: Any, name: str, image, mask, size: int, steps: int) -> Any:
    """The stock pipeline's call with the worker's settings (``stock_settings``). Qwen-Image-
    Edit's pipelines bring pictures to 1 MP whatever the call asks: both sides run at the
    size's area, as the worker does (the same 1 MP at the published size)."""
    family = FAMILIES[name]
    if family.modular:  # diffusers' modular pipeline as it is: the picture, the words
        with torch.inference_mode():
            return pipe.pipe(
                prompt=PROMPT,
                image=image,
                height=size,
                width=size,
                num_inference_steps=steps,
                generator=torch.Generator("cpu").manual_seed(1),
                output="images",
            )
    if family.mask_argument is None:  # the mask a picture after the one it edits
        pictures = {"image": [image, mask.convert("RGB")]}
    else:
        pictures = {"image": image, family.mask_argument: mask}
    with picture_area.picture_area(pipe, picture_area.working_area(family, size)):
        return pipe(
            prompt=PROMPT,
            **pictures,
            height=size,
            width=size,
            num_inference_steps=steps,
            generator=torch.Generator("cpu").manual_seed(1),
            **stock_settings(name, size),
        )


def stock_against_worker(
    name, folder: Path, pipe, size, steps, dtype, args, results, budget: Budget
) -> None:
    """The stock pipeline's call, then the worker's path on the same pipeline under the
    ``gpu`` memory plan (eager, and compiled where asked and the budget has room); the stock
    side first: the worker's path changes the pipeline (``speed_up``). The row is in the
    report from the start: a cut at the deadline keeps what was measured."""
    family = FAMILIES[name]
    row: dict[str, Any] = {
        "family": name,
        "label": family.label,
        "size": size,
        "steps": steps,
        "dtype": str(dtype).removeprefix("torch."),
        "parameters": sum(parameters(pipe).values()),
    }
    results.families.append(row)
    image, mask = inputs(size)
    denoiser = family.denoiser

    def stock():
        stock_call(pipe, name, image, mask, size, steps)

    timing = timed(stock, args.runs, args.device)
    row["stock_s"], row["stock_peak_bytes"] = timing.seconds, timing.peak_bytes
    row["stock_first_s"] = timing.first_s
    budget.per_picture[name] = row["stock_s"]
    # Compiled: its compilation (a minute or two a side at the published sizes) is not in the
    # estimate; the deadline cuts it where it runs over.
    compiled_estimate = estimate(budget, name, 1, args.runs)
    if args.compile and budget.start(f"{name}: stock compiled", compiled_estimate):
        eager = getattr(pipe, denoiser)
        setattr(pipe, denoiser, torch.compile(eager))
        try:
            timing = timed(stock, args.runs, args.device)
            row["stock_compiled_s"], row["stock_compiled_first_s"] = timing.seconds, timing.first_s
        finally:
            setattr(pipe, denoiser, eager)
    request = request_for(name, image, mask, steps)
    adopt_pipeline(str(folder), pipe, args.device, size=size, memory_plan=memory.GPU)
    row["plan"] = loading.memory_plan_of(str(folder), args.device, False)
    backend = DiffusersBackend(model=str(folder), device=args.device, working_size=size)
    eager = timed(lambda: run_inpaint(request, backend), args.runs, args.device)
    row["dreamlayer_s"], row["dreamlayer_peak_bytes"] = eager.seconds, eager.peak_bytes
    row["dreamlayer_first_s"] = eager.first_s
    row["speed_up"] = row["stock_s"] / row["dreamlayer_s"]
    budget.per_picture[name] = row["dreamlayer_s"]
    if budget.start(f"{name}: graphs and the fast tier", estimate(budget, name, 2, args.runs)):
        graphs_and_fast_tier(name, folder, size, request, eager, args, row)
    compiled_estimate = estimate(budget, name, 1, args.runs)
    if args.compile and budget.start(f"{name}: DreamLayer compiled", compiled_estimate):
        # The worker compiles at its start: the warm-up call of ``adopt_pipeline``.
        started = time.perf_counter()
        adopt_pipeline(
            str(folder), pipe, args.device, compile_unet=True, size=size, memory_plan=memory.GPU
        )
        row["dreamlayer_compile_start_s"] = time.perf_counter() - started
        compiled = DiffusersBackend(
            model=str(folder), device=args.device, working_size=size, compile_unet=True
        )
        timing = timed(lambda: run_inpaint(request, compiled), args.runs, args.device)
        row["dreamlayer_compiled_s"] = timing.seconds
        row["dreamlayer_compiled_first_s"] = timing.first_s
        # The same job, seed and pipeline: what compiling changes in the picture.
        row["compiled_against_eager"] = picture_distance(
            timing.output.images[0], eager.output.images[0]
        )
        # The compiled module wraps the eager one: unwrapped, in the eager default's layout,
        # for the next part.
        setattr(pipe, denoiser, getattr(denoiser_of(pipe), "_orig_mod", denoiser_of(pipe)))
        stock_layout(pipe, denoiser)


def graphs_and_fast_tier(name, folder: Path, size, request, eager: Timing, args, row) -> None:
    """The worker's path with CUDA graphs of its denoiser at this size (``CUDA_GRAPH_SIZES``:
    the capture at the model's load, timed, then the job), and in the fast tier where the
    family has one (``speed: "fast"``); each against the eager picture: the graphs' largest
    difference (0 levels wanted), the fast tier's PSNR. Without CUDA the graphed backend says
    why it ran eager (one untimed call)."""
    graphed = DiffusersBackend(
        model=str(folder), device=args.device, working_size=size, graph_sizes=f"{size}x{size}"
    )
    started = time.perf_counter()
    graphed.load()  # the capture, on CUDA (once a pipeline)
    synchronize(args.device)
    row["graph_capture_s"] = time.perf_counter() - started
    said = run_inpaint(request, graphed).metadata.get("cuda_graph")
    row["graphs_said"] = said
    if said == "replayed":
        timing = timed(lambda: run_inpaint(request, graphed), args.runs, args.device)
        row["graphs_s"] = timing.seconds
        row["graphs_against_eager"] = picture_distance(
            timing.output.images[0], eager.output.images[0]
        )
    if FAMILIES[name].capabilities.fast_tier:
        backend = DiffusersBackend(model=str(folder), device=args.device, working_size=size)
        fast_request = replace(request, speed="fast")
        timing = timed(lambda: run_inpaint(fast_request, backend), args.runs, args.device)
        row["fast_s"] = timing.seconds
        row["fast_psnr_db"] = psnr(timing.output.images[0], eager.output.images[0])


def psnr(one: Image.Image, other: Image.Image) -> float | None:
    """The peak signal-to-noise ratio of two pictures of the same job, in dB (None: the
    same picture)."""
    mse = float(np.mean((np.asarray(one, np.float64) - np.asarray(other, np.float64)) ** 2))
    return None if mse == 0 else 10 * np.log10(255**2 / mse)


def stock_layout(pipe: Any, denoiser: str) -> None:
    """The layout of an eager pipeline again (``loading.fast_path``: the stock one) after the
    compiled side's fast path (``loading.speed_up``): contiguous UNet and VAE, unfused QKV."""
    if denoiser == "unet":
        pipe.unet.to(memory_format=torch.contiguous_format)
        pipe.vae.to(memory_format=torch.contiguous_format)
    with contextlib.suppress(AttributeError, ValueError, NotImplementedError):
        pipe.unfuse_qkv_projections()  # where speed_up fused them


def release(device: str) -> None:
    """The kit's pipeline let go (the worker path's cache emptied) and its memory freed."""
    loading.unload_all()
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def batching_part(name, folder: Path, pipe, size: int, steps: int, args, results, budget) -> None:
    adopt_pipeline(str(folder), pipe, args.device, size=size, memory_plan=memory.GPU)
    plan = loading.memory_plan_of(str(folder), args.device, False)
    backend = DiffusersBackend(model=str(folder), device=args.device, working_size=size)
    image, _ = inputs(size)
    for count in BATCHES:
        if not budget.start(
            f"{name}: batching {count} jobs", estimate(budget, name, count, args.runs)
        ):
            continue
        jobs = []
        for index in range(count):
            box = Image.new("L", (size, size), 0)
            offset = index * size // 32  # each job its own hole, prompt and seed
            box.paste(255, (size // 4 + offset, size // 4, size // 2 + offset, 3 * size // 4))
            jobs.append(
                request_for(name, image, box, steps, seed=index, prompt=f"{PROMPT} {index}")
            )

        def batch(jobs=jobs):
            outcomes = run_inpaint_batch(
                jobs,
                backend,
                progresses=[lambda event: None] * len(jobs),
                cancel_checks=[lambda: False] * len(jobs),
            )
            failed = [o for o in outcomes if isinstance(o, Exception)]
            if failed:
                raise failed[0]

        seconds = timed(batch, args.runs, args.device).seconds
        results.batching.append(
            {
                "family": name,
                "jobs": count,
                "plan": plan,
                "seconds": seconds,
                "images_per_s": count / seconds,
            }
        )


def profile_part(name, folder: Path, pipe, size: int, args, results) -> None:
    """One denoising step of the worker path under the profiler (after an unprofiled one),
    under the ``gpu`` plan."""
    adopt_pipeline(str(folder), pipe, args.device, size=size, memory_plan=memory.GPU)
    backend = DiffusersBackend(model=str(folder), device=args.device, working_size=size)
    image, mask = inputs(size)
    request = request_for(name, image, mask, 1)
    run_inpaint(request, backend)
    cuda = args.device == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    synchronize(args.device)
    started = time.perf_counter()
    with profile(activities=activities) as prof:
        run_inpaint(request, backend)
        synchronize(args.device)
    wall = time.perf_counter() - started
    events = prof.key_averages()
    row: dict[str, Any] = {
        "family": name,
        "plan": loading.memory_plan_of(str(folder), args.device, False),
        "wall_s": wall,
    }
    if cuda:
        launches = sum(e.count for e in events if "LaunchKernel" in e.key)
        busy = sum(e.self_device_time_total for e in events if e.device_type.name == "CUDA")
        row.update(launches_per_step=launches, gpu_busy_share=busy / 1e6 / wall)
    else:
        row["operators_per_step"] = sum(e.count for e in events if e.key.startswith("aten::"))
    results.profile.append(row)


def plans_part(name: str, args, root: Path, results: Results, budget: Budget) -> None:
    """Each memory plan but ``gpu`` that the planner offers for the family, on a fresh
    pipeline each (a plan's hooks and fp8 weights stay with the pipeline it prepared): the
    worker's path timed as in the families part, the plan that ran, its peak memory, and its
    time against the ``gpu`` plan's where the families part measured that."""
    size, steps = size_and_steps(name, args)
    dtype = dtype_of(name, args.device)
    if not budget.start(f"{name}: plans"):
        return
    folder = model_folder(name, args.real, root)
    image, mask = inputs(size)
    request = request_for(name, image, mask, steps)
    on_gpu = next(
        (r for r in results.families if r["family"] == name and "dreamlayer_s" in r), None
    )
    pipe = build_pipeline(folder, name, args.device, dtype)
    offered = memory.offered(loading.parts_of(pipe, FAMILIES[name]))
    for plan in [p for p in offered if p != memory.GPU]:
        if not budget.start(f"{name}: plan {plan}", estimate(budget, name, 1, args.runs)):
            continue
        if pipe is None:
            pipe = build_pipeline(folder, name, args.device, dtype)
        adopt_pipeline(str(folder), pipe, args.device, size=size, memory_plan=plan)
        row: dict[str, Any] = {
            "family": name,
            "asked": plan,
            "plan": loading.memory_plan_of(str(folder), args.device, False),
        }
        backend = DiffusersBackend(
            model=str(folder), device=args.device, working_size=size, memory_plan=plan
        )
        timing = timed(
            lambda backend=backend: run_inpaint(request, backend), args.runs, args.device
        )
        row["seconds"], row["peak_bytes"] = timing.seconds, timing.peak_bytes
        if on_gpu:
            row["against_gpu"] = row["seconds"] / on_gpu["dreamlayer_s"]
        results.plans.append(row)
        pipe = backend = None
        release(args.device)
    pipe = None
    release(args.device)


# ----- the stack ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


#: How long a waiting ``POST /api/img2img`` waits in the kit's stack (the default, 60 s, could
#: answer a slow first job with a 202); the client waits a minute longer.
STACK_WAIT_SECONDS = 600


def stack_env(
    data: Path, port: int, default_model: Path, real: bool, size: int | None = None
) -> dict[str, str]:
    """``make run``'s environment for a fresh data folder: SQLite, the embedded Redis, the
    library in ``data/models``, the default model loaded at worker start; where the models
    are tiny, the working size ``size`` (``--image-size``: a tiny model's job at that size,
    its VAE made for a large side by ``for_large_side``, as a published model works on a
    1024 px picture) or the tiny size, else each family's own. The worker is told the ``gpu``
    memory plan (as the families part runs it: the two SD models fit any card the kit runs
    on), and a waiting request waits up to 10 minutes (a first 1024 px job on a slow card, or
    4 queued, answers its picture, not a 202)."""
    cleared = ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "DJANGO_SECRET_KEY")
    env = {k: v for k, v in os.environ.items() if k not in cleared}
    env.update(
        DREAMLAYER_DATA_DIR=str(data),
        PORT=str(port),
        LOAD_SD_INPAINT="true",
        SD_INPAINT_MODEL=str(default_model),
        INPAINT_ENGINE="auto",
        MODEL_MEMORY_PLAN=memory.GPU,
        IMG2IMG_WAIT_SECONDS=str(STACK_WAIT_SECONDS),
        PYTHONUNBUFFERED="1",
    )
    if not real:
        env["INPAINT_WORKING_SIZE"] = str(size or TINY_SIZE)
    return env


#: One ``manage.py shell`` for the database, the library's scan, the users and their keys (a
#: process start each costs seconds: three commands took three).
PREPARED_WITH_KEYS = """
from django.core.management import call_command
from accounts.models import User
from accounts.services import api_key_create
call_command("migrate", interactive=False, verbosity=0)
call_command("models", "scan")
for name in {users}:
    user = User.objects.create_user(username=name, password=name + "-kit-password")
    print(api_key_create(user=user, name="gpu-kit", expires_in_days=1)[1])
"""


def manage(env: dict, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def stack_part(args, root: Path, results: Results) -> None:
    data = root / "stack-data"
    library = data / "models"
    library.mkdir(parents=True)
    names = {}
    # The families asked for that the stack runs (both where none of them is asked for).
    families = [name for name in STACK_FAMILIES if name in args.families] or list(STACK_FAMILIES)
    for name in families:
        family = FAMILIES[name]
        dtype = getattr(torch, family.cuda_dtype) if args.device == "cuda" else torch.float32
        folder = model_folder(name, args.real, root / "stack-configs")
        if not args.real and size_and_steps(name, args)[0] > TINY_SIZE:
            folder = for_large_side(folder)
        pipe = build_pipeline(folder, name, args.device, dtype)
        names[name] = f"random-{name}"
        pipe.save_pretrained(library / names[name], safe_serialization=True)
        del pipe
        release(args.device)
    port = free_port()
    env = stack_env(data, port, library / names[families[0]], args.real, args.image_size)
    users = [f"kit{index}" for index in range(STACK_USERS)]
    made = manage(env, "shell", "-c", PREPARED_WITH_KEYS.format(users=users))
    keys = [word for word in made.split() if word.startswith("dl_")]  # what else it logs aside
    if len(keys) != STACK_USERS:
        raise RuntimeError(f"manage.py shell made no keys: {made[-2000:]}")
    log = root / "stack.log"
    stack = subprocess.Popen(
        [sys.executable, "-m", "dreamlayer_site.stack"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        up(base, stack, log)
        served(base, keys[0], [names[name] for name in families], stack, log)
        for name in families:
            size, steps = size_and_steps(name, args)
            image, mask = inputs(size)
            job = (base, names[name], image, mask, steps)
            post(*job, key=keys[0])  # the worker loads the model: not counted
            trips = [post(*job, key=keys[0]) for _ in range(args.runs)]
            alone = statistics.median(trip for trip, _ in trips)
            inference = statistics.median(m["timings"]["inference"] for _, m in trips)
            together: list[float] = []
            failed: list[Exception] = []

            def one_user(key: str, job=job, together=together, failed=failed) -> None:
                try:
                    together.append(post(*job, key=key)[0])
                except Exception as exc:  # noqa: BLE001 - said after the join
                    failed.append(exc)

            threads = [threading.Thread(target=one_user, args=(key,)) for key in keys]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            if failed:
                raise failed[0]
            results.stack.append(
                {
                    "family": name,
                    "size": size,
                    "steps": steps,
                    "plan": trips[0][1].get("memory_plan"),
                    "one_job_s": alone,
                    "worker_inference_s": inference,
                    **outside_inference(trips),
                    "in_process_s": None,  # filled by ``Results.write``
                    "users": STACK_USERS,
                    "all_users_s": time.perf_counter() - started,
                    "slowest_user_s": max(together),
                }
            )
    finally:
        # Ctrl-C to what is left of it (nothing, where it stopped: its error is the one said).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(stack.pid, signal.SIGINT)
        try:
            stack.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(stack.pid, signal.SIGKILL)
            stack.wait()


def outside_inference(trips: list[tuple[float, dict]]) -> dict[str, float]:
    """Where a job's round trip went besides the worker's inference, median seconds of the
    jobs, each from its answer's ``timings`` (the job's row: ``queue`` from the row to the
    worker's claim, ``total`` from the row to the result stored): the whole (the stack's
    share of the job), the web process (the request up to the row, and from the result
    stored to the answer received), the queue, and the worker around the engine (the stored
    picture read, the runner's preparing and compositing, the result encoded and stored)."""
    timings = [(trip, metadata["timings"]) for trip, metadata in trips]
    return {
        "outside_inference_s": statistics.median(t - m["inference"] for t, m in timings),
        "web_s": statistics.median(t - m["total"] for t, m in timings),
        "queued_s": statistics.median(m["queue"] for _, m in timings),
        "worker_around_s": statistics.median(
            m["total"] - m["queue"] - m["inference"] for _, m in timings
        ),
    }


def up(base: str, stack: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stack.poll() is not None:
            raise RuntimeError(f"the stack stopped:\n{log.read_text()[-4000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{base}/api/health", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"the stack did not answer in {timeout:.0f} s:\n{log.read_text()[-4000:]}")


def served(base: str, key: str, models: list[str], stack, log: Path, timeout: float = 300):
    """Wait until a live worker serves each of ``models`` (``GET /api/models``' ``workers``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stack.poll() is not None:
            raise RuntimeError(f"the stack stopped:\n{log.read_text()[-4000:]}")
        answer = requests.get(
            f"{base}/api/models", headers={"Authorization": f"Api-Key {key}"}, timeout=10
        )
        if answer.status_code != 200:
            raise RuntimeError(f"GET /api/models answered {answer.status_code}: {answer.text}")
        workers = {m["name"]: m["workers"] for m in answer.json().get("models", [])}
        if all(workers.get(model) for model in models):
            return
        time.sleep(1.0)
    raise RuntimeError(f"no worker served {models} in {timeout:.0f} s:\n{log.read_text()[-4000:]}")


def post(base: str, model: str, image, mask, steps: int, key: str) -> tuple[float, dict]:
    """One job through the API, waited for; its round trip and the answer's metadata (the
    worker's timings, the memory plan it ran under)."""

    def png(picture: Image.Image) -> bytes:
        buffer = io.BytesIO()
        picture.save(buffer, "PNG")
        return buffer.getvalue()

    # The client's own encodes are not the stack's work: made before the clock starts (a
    # 1024 px noise picture takes Pillow about 0.1 s; they were timed with the job before).
    files = {"image": ("in.png", png(image), "image/png"), "mask": ("m.png", png(mask))}
    started = time.perf_counter()
    response = requests.post(
        f"{base}/api/img2img",
        files=files,
        data={
            "prompt": PROMPT,
            "engine": "diffusers",
            "model": model,
            "mask_mode": "white_inpaints",
            "num_inference_steps": str(steps),
            "seed": "1",
        },
        headers={"Authorization": f"Api-Key {key}"},
        timeout=STACK_WAIT_SECONDS + 60,
    )
    body = response.json()
    if response.status_code != 200 or body.get("status") != "success":
        raise RuntimeError(f"the job answered {response.status_code}: {body}")
    return time.perf_counter() - started, body["metadata"]


# ----- the report -------------------------------------------------------------------------
def _s(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _count(value: int) -> str:
    return f"{value / 1e9:.2f} B" if value >= 1e9 else f"{value / 1e6:.1f} M"


def _gib(value: int | None) -> str:
    return "" if value is None else f"{value / 2**30:.1f}"


def _table(title: str, header: list[str], rows: list[list[str]]) -> list[str]:
    """A part's Markdown table; nothing where the part did not run."""
    if not rows:
        return []
    return [
        "",
        f"## {title}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + " --- |" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _x(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def markdown(results: Results) -> str:
    budget = f"{results.budget_s:g} s" if results.budget_s else "none"
    lines = [
        f"# GPU kit: {results.gpu or results.device}, {results.size} size, {results.started}",
        "",
        f"Command: `{results.command}`",
        "",
        f"Time: {results.elapsed_s:.0f} s (budget: {budget})",
    ]
    lines += _table(
        "Families (seconds a picture, median; peak GPU memory in GiB)",
        ["family", "size", "steps", "dtype", "plan", "parameters", "stock", "stock compiled",
         "DreamLayer", "DreamLayer compiled", "stock / DreamLayer", "peak stock",
         "peak DreamLayer"],
        [
            [r["label"], str(r["size"]), str(r["steps"]), r["dtype"], r.get("plan") or "",
             _count(r["parameters"]), _s(r.get("stock_s")), _s(r.get("stock_compiled_s")),
             _s(r.get("dreamlayer_s")), _s(r.get("dreamlayer_compiled_s")),
             _x(r.get("speed_up")), _gib(r.get("stock_peak_bytes")),
             _gib(r.get("dreamlayer_peak_bytes"))]
            for r in results.families
        ],
    )  # fmt: skip
    lines += _table(
        "The compiled path: the first call (the stock side compiles in it, the worker at its "
        "start) and the compiled picture against the eager one",
        ["family", "stock first s", "stock compiled first s", "DreamLayer first s",
         "DreamLayer compiling at worker start s", "DreamLayer compiled first s",
         "largest difference (levels)", "values > 1 level apart"],
        [
            [r["label"], _s(r.get("stock_first_s")), _s(r.get("stock_compiled_first_s")),
             _s(r.get("dreamlayer_first_s")), _s(r.get("dreamlayer_compile_start_s")),
             _s(r.get("dreamlayer_compiled_first_s")),
             str(r["compiled_against_eager"]["max_level"]),
             f"{r['compiled_against_eager']['share_over_1']:.2%}"]
            for r in results.families
            if "compiled_against_eager" in r
        ],
    )  # fmt: skip
    lines += _table(
        "CUDA graphs and the fast tier (the worker's path at the same size; against eager)",
        ["family", "capture at load s", "graphs", "graphs s", "eager / graphs",
         "largest difference (levels)", "fast tier s", "eager / fast", "fast PSNR dB"],
        [
            [r["label"], _s(r.get("graph_capture_s")), r.get("graphs_said") or "",
             _s(r.get("graphs_s")),
             _x(r["dreamlayer_s"] / r["graphs_s"] if r.get("graphs_s") else None),
             str(r["graphs_against_eager"]["max_level"]) if "graphs_against_eager" in r else "",
             _s(r.get("fast_s")),
             _x(r["dreamlayer_s"] / r["fast_s"] if r.get("fast_s") else None),
             "identical" if "fast_s" in r and r.get("fast_psnr_db") is None
             else (f"{r['fast_psnr_db']:.1f}" if r.get("fast_psnr_db") else "")]
            for r in results.families
            if "graphs_said" in r
        ],
    )  # fmt: skip
    lines += _table(
        "Batching (jobs in one batch)",
        ["family", "plan", "jobs", "s", "images/s"],
        [
            [r["family"], r["plan"], str(r["jobs"]), _s(r["seconds"]),
             f"{r['images_per_s']:.2f}"]
            for r in results.batching
        ],
    )  # fmt: skip
    lines += _table(
        "One denoising step profiled (the worker's path)",
        ["family", "plan", "wall s", "kernel launches", "GPU busy", "operators (CPU)"],
        [
            [r["family"], r["plan"], _s(r["wall_s"]), str(r.get("launches_per_step", "")),
             f"{r['gpu_busy_share']:.0%}" if "gpu_busy_share" in r else "",
             str(r.get("operators_per_step", ""))]
            for r in results.profile
        ],
    )  # fmt: skip
    lines += _table(
        "A whole job through the stack (daphne, Celery; SQLite, the embedded Redis)",
        ["family", "size", "steps", "plan", "one job s", "worker inference s",
         "in this process s", "stack's share s", "users at once", "all users s",
         "slowest user s"],
        [
            [r["family"], str(r["size"]), str(r["steps"]), r["plan"] or "", _s(r["one_job_s"]),
             _s(r["worker_inference_s"]), _s(r["in_process_s"]),
             _s(r["one_job_s"] - r["in_process_s"] if r["in_process_s"] is not None else None),
             str(r["users"]), _s(r["all_users_s"]), _s(r["slowest_user_s"])]
            for r in results.stack
        ],
    )  # fmt: skip
    lines += _table(
        "Outside the worker's inference (one job; medians of the jobs' own timings)",
        ["family", "size", "steps", "one job s", "worker inference s", "outside inference s",
         "share of the job", "web process s", "queued s", "worker around the engine s"],
        [
            [r["family"], str(r["size"]), str(r["steps"]), _s(r["one_job_s"]),
             _s(r["worker_inference_s"]), _s(r["outside_inference_s"]),
             f"{r['outside_inference_s'] / r['one_job_s']:.0%}", _s(r["web_s"]),
             _s(r["queued_s"]), _s(r["worker_around_s"])]
            for r in results.stack
            if "outside_inference_s" in r
        ],
    )  # fmt: skip
    lines += _table(
        "Memory plans (the worker's path; seconds a picture, median; peak GPU memory in GiB)",
        ["family", "plan asked", "plan run", "s", "peak", "against the gpu plan"],
        [
            [r["family"], r["asked"], r["plan"] or "", _s(r["seconds"]), _gib(r["peak_bytes"]),
             _x(r.get("against_gpu"))]
            for r in results.plans
        ],
    )  # fmt: skip
    if results.skipped:
        lines += ["", "Not measured: " + "; ".join(results.skipped)]
    if results.over_budget:
        lines += [
            "",
            f"Not run within the time budget ({budget}): " + "; ".join(results.over_budget),
        ]
    return "\n".join(lines) + "\n"


# ----- the dry run --------------------------------------------------------------------------
def dry_run(args) -> int:
    """Every module of the project (and the libraries the worker's path imports only when a
    job needs them), and every family's published configuration built on the meta device (no
    memory): the carried wheels are complete, the configurations construct. Prints the
    parameter counts."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dreamlayer_site.settings")
    django.setup()
    modules = ["patchmatch", "compel", "daphne.server", "celery.bin.celery", "honcho.manager"]
    for package in ("accounts", "dreamlayer_site", "inpainting"):
        root = importlib.import_module(package)
        modules += [m.name for m in pkgutil.walk_packages(root.__path__, f"{package}.")]
    for module in modules:
        importlib.import_module(module)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.families:
            folder = model_folder(name, True, Path(tmp))
            dtype = getattr(torch, FAMILIES[name].cuda_dtype)
            counts = parameters(build_pipeline(folder, name, "meta", dtype))
            print(name, {part: f"{count / 1e9:.3f} B" for part, count in counts.items()})
    print(
        f"dry run: {len(modules)} modules imported, {len(args.families)} published "
        "configurations built"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("published", "tiny"), help="default: published on CUDA")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--families", default=",".join(RUNS))
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument(
        "--plan-families", help="the families the plans part times (default: --families)"
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--image-size", type=int, help="instead of the family's (or tiny) side")
    parser.add_argument("--steps", type=int, help="instead of the family's (or tiny) steps")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="also torch.compile (default: on CUDA)")  # fmt: skip
    parser.add_argument(
        "--budget-seconds",
        type=float,
        default=BUDGET_SECONDS,
        help="the whole run's time: what does not fit is not started, what "
        "runs at the deadline is cut, both named in the report (0: none)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "gpu-kit")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    args.families = [f for f in args.families.split(",") if f]
    args.parts = [p for p in args.parts.split(",") if p]
    args.plan_families = (
        [f for f in args.plan_families.split(",") if f] if args.plan_families else args.families
    )
    unknown = [f for f in dict.fromkeys(args.families + args.plan_families) if f not in RUNS] + [
        p for p in args.parts if p not in PARTS
    ]
    if unknown:
        parser.error(f"unknown: {', '.join(unknown)} (families: {', '.join(RUNS)}; parts: "
                     f"{', '.join(PARTS)})")  # fmt: skip
    if args.dry_run:
        return dry_run(args)
    args.device = resolve_device(args.device)
    cuda = args.device == "cuda"
    args.real = (args.size or ("published" if cuda else "tiny")) == "published"
    args.compile = cuda if args.compile is None else args.compile
    budget = Budget(args.budget_seconds)
    results = Results(
        device=args.device,
        gpu=torch.cuda.get_device_name() if cuda else None,
        size="published" if args.real else "tiny",
        started=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        command=" ".join(["bench/gpu_kit.py", *(argv if argv is not None else sys.argv[1:])]),
        budget_s=budget.seconds,
        over_budget=budget.missed,
    )

    def step(what: str, run) -> None:
        """``run()`` within the budget; a failure (out of memory: the worker's path says so as
        an EngineError) is named in the report and the next step runs: a lent GPU's minutes
        are not spent again on what already ran."""
        with budget.cut(what):
            try:
                run()
                print(f"{what} done", flush=True)
            except Exception as exc:  # noqa: BLE001 - reported, and the run goes on
                traceback.print_exc()
                results.skipped.append(f"{what}: {type(exc).__name__}: {exc}".splitlines()[0])
        release(args.device)
        results.elapsed_s = budget.used()
        results.write(args.out)

    with tempfile.TemporaryDirectory(prefix="gpu-kit-") as tmp:
        root = Path(tmp)
        # In the order --parts names them, the family parts together (one pipeline a family).
        for phase in dict.fromkeys("family" if p in FAMILY_PARTS else p for p in args.parts):
            if phase == "family":
                for name in args.families:
                    step(name, lambda n=name: family_part(n, args, root / "f", results, budget))
            elif phase == "stack" and budget.start("stack"):
                step("stack", lambda: stack_part(args, root, results))
            elif phase == "plans":
                for name in args.plan_families:
                    step(
                        f"{name} plans",
                        lambda n=name: plans_part(n, args, root / "p", results, budget),
                    )
        shutil.rmtree(root, ignore_errors=True)
    results.elapsed_s = budget.used()
    results.write(args.out)
    print((args.out / "gpu-kit.md").read_text())
    return 1 if results.skipped else 0  # what failed is in the report, and said by the code


if __name__ == "__main__":
    sys.exit(main())
