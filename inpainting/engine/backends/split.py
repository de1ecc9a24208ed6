"""A picture split into transparent layers (issue 80): Qwen-Image-Layered (Alibaba's Qwen
team, Apache-2.0; diffusers' ``QwenImageLayeredPipeline``) reads a photo and paints N RGBA
layers that stack back into it: the background, and each object on its own, its alpha its
shape. Each layer can then be a layer of the canvas (its alpha its mask), moved, hidden or
repainted.

The pipeline works at one of two sizes (``resolution``: 640 or 1024 px on the long side, the
picture's aspect kept); the layers come back at the picture's own size. With no prompt the
model's own Qwen2.5-VL describes the picture first (its captioner); a prompt saves that pass.

Imported where a split runs (torch, transformers: heavy)."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from ..layers import MAX_LAYERS
from ..runner import resolve_seeds
from ..types import CancelCheck, Cancelled, InvalidInput, ProgressCallback, ProgressEvent
from .loading import resolve_device
from .qwen_vl import processor_parts

#: The fewest layers a split makes (the background and one object).
MIN_SPLIT_LAYERS = 2
#: The sizes the pipeline works at (its long side); the smaller is the default.
RESOLUTIONS = (640, 1024)
#: Split pipelines kept loaded in a process (each holds its transformer and text encoder).
_CACHE_SIZE = 1
_PIPELINES: OrderedDict[tuple[str, str], Any] = OrderedDict()


@dataclass(frozen=True)
class SplitRequest:
    image: Image.Image
    layers: int = 4
    prompt: str = ""  # the picture described; "": the model's captioner describes it
    negative_prompt: str = " "
    num_inference_steps: int = 50  # Qwen's example
    guidance_scale: float = 4.0  # true_cfg_scale in Qwen's example
    seed: int | None = None
    resolution: int = RESOLUTIONS[0]


@dataclass(frozen=True)
class SplitResult:
    layers: list[Image.Image]  # RGBA, the picture's size, bottom up
    seed: int
    seconds: float


def check_split(request: SplitRequest) -> None:
    """What a split may ask, refused before any work (``InvalidInput`` naming the field)."""
    if not MIN_SPLIT_LAYERS <= request.layers <= MAX_LAYERS:
        raise InvalidInput(
            f"A picture splits into {MIN_SPLIT_LAYERS} to {MAX_LAYERS} layers.", field="layers"
        )
    if request.resolution not in RESOLUTIONS:
        raise InvalidInput(
            f"resolution is one of {', '.join(map(str, RESOLUTIONS))}.", field="resolution"
        )


def _pipeline(folder: Path, device: str) -> Any:
    import diffusers  # noqa: PLC0415 - heavy, as torch
    import torch  # noqa: PLC0415 - torch: heavy, loaded only where a model runs

    key = (str(folder), device)
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

    check_split(request)
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
