"""Qwen-Image-Layered run (``engine.splitting`` says what a split is and asks): the folder's
``QwenImageLayeredPipeline`` loaded once a process, a picture split into N RGBA layers with
progress a step and cancel between steps. Imported where a split runs (torch, transformers:
heavy)."""

from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from PIL import Image

from ..runner import resolve_seeds
from ..splitting import SplitRequest, SplitResult, check_split
from ..types import CancelCheck, Cancelled, ProgressCallback, ProgressEvent
from .loading import LOAD_LOCK, resolve_device
from .qwen_vl import processor_parts

#: Split pipelines kept loaded in a process (each holds its transformer and text encoder).
_CACHE_SIZE = 1
_PIPELINES: OrderedDict[tuple[str, str], Any] = OrderedDict()


def _pipeline(folder: Path, device: str) -> Any:
    import diffusers  # noqa: PLC0415 - heavy, as torch
    import torch  # noqa: PLC0415 - torch: heavy, loaded only where a model runs

    key = (str(folder), device)
    # Under the diffusion loader's lock: diffusers builds a pipeline's modules on the meta
    # device, a switch of torch's that is global to the process, so a load beside another
    # (the worker's start-up model) came out on the meta device.
    with LOAD_LOCK:
        if key not in _PIPELINES:
            while len(_PIPELINES) >= _CACHE_SIZE:
                _PIPELINES.popitem(last=False)
            dtype = torch.bfloat16 if device == "cuda" else torch.float32
            pipe = diffusers.QwenImageLayeredPipeline.from_pretrained(
                folder,
                dtype=dtype,
                use_safetensors=True,
                local_files_only=True,
                **processor_parts(folder),
            )
            pipe.set_progress_bar_config(disable=True)
            _PIPELINES[key] = pipe.to(device)
        _PIPELINES.move_to_end(key)
        return _PIPELINES[key]


def split_layers(
    folder: str | Path,
    request: SplitRequest,
    *,
    device: str = "auto",
    progress: ProgressCallback | None = None,
    is_cancelled: CancelCheck | None = None,
) -> SplitResult:
    """``request.image`` split into ``request.layers`` RGBA layers by the Qwen-Image-Layered
    model in ``folder`` (a diffusers folder), with progress a step and cancel between steps."""
    import torch  # noqa: PLC0415 - torch: heavy, loaded only where a model runs

    check_split(request.layers, request.resolution)
    started = time.perf_counter()
    pipe = _pipeline(Path(folder), resolve_device(device))
    (seed,) = resolve_seeds(request.seed, 1)

    def on_step_end(pipeline: Any, step: int, timestep: Any, kwargs: dict) -> dict:
        if progress is not None:
            progress(ProgressEvent(step + 1, pipeline.num_timesteps))
        if is_cancelled is not None and is_cancelled():
            raise Cancelled()
        return kwargs

    with torch.inference_mode():
        out = pipe(
            image=request.image.convert("RGBA"),
            prompt=request.prompt.strip() or None,
            negative_prompt=request.negative_prompt,
            true_cfg_scale=request.guidance_scale,
            layers=request.layers,
            num_inference_steps=request.num_inference_steps,
            resolution=request.resolution,
            generator=torch.Generator(device="cpu").manual_seed(seed),
            callback_on_step_end=on_step_end,
            output_type="pil",
        )
    size = request.image.size
    layers = [
        layer.convert("RGBA").resize(size, Image.Resampling.LANCZOS) for layer in out.images[0]
    ]
    return SplitResult(layers, seed, time.perf_counter() - started)
