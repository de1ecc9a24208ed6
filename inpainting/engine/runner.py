"""The behaviour every backend shares, implemented once around them.

``run_inpaint`` turns a request into the effective mask, picks the seeds, brings the image to
the backend's working resolution, calls the backend, brings the results back to the input
size and composites them so that unmasked pixels stay byte-identical.
"""

from __future__ import annotations

import secrets
import time
from typing import Protocol

import numpy as np
from PIL import Image

from .compose import composite_images, working_dimensions
from .masks import effective_mask
from .types import (
    MAX_SEED,
    BackendCall,
    BackendOutput,
    CancelCheck,
    Cancelled,
    InpaintRequest,
    InpaintResult,
    InvalidInput,
    ProgressCallback,
    ProgressEvent,
)


class Backend(Protocol):
    name: str
    #: Long side the backend works at, or None to work at the input's own size.
    working_size: int | None

    def inpaint(
        self, call: BackendCall, progress: ProgressCallback, is_cancelled: CancelCheck
    ) -> BackendOutput: ...


def _no_progress(event: ProgressEvent) -> None:
    return None


def _never_cancelled() -> bool:
    return False


def resolve_seeds(seed: int | None, samples: int) -> list[int]:
    """``samples`` seeds ``seed, seed+1, ...``; a random start when ``seed`` is None or -1."""
    if seed is None or seed < 0:
        seed = secrets.randbelow(MAX_SEED + 1)
    if seed > MAX_SEED:
        raise InvalidInput(f"seed must be between 0 and {MAX_SEED}.")
    return [(seed + i) % (MAX_SEED + 1) for i in range(samples)]


def prepare_mask(request: InpaintRequest) -> np.ndarray:
    """The effective mask for the request's image; refuses a mask that selects nothing."""
    mask = effective_mask(request.mask, request.image.size, request.mask_options)
    if not mask.any():
        raise InvalidInput(
            "The mask selects no pixels to inpaint (check the mask polarity of this endpoint)."
        )
    return mask


def run_inpaint(
    request: InpaintRequest,
    backend: Backend,
    *,
    progress: ProgressCallback | None = None,
    is_cancelled: CancelCheck | None = None,
) -> InpaintResult:
    progress = progress or _no_progress
    is_cancelled = is_cancelled or _never_cancelled
    if not 1 <= request.samples <= 4:
        raise InvalidInput("samples must be between 1 and 4.")
    original = request.image.convert("RGB")
    mask = prepare_mask(request)
    seeds = resolve_seeds(request.seed, request.samples)
    if is_cancelled():
        raise Cancelled()

    hole = Image.fromarray(np.where(mask > 0, 255, 0).astype(np.uint8), "L")
    model_image = original
    if backend.working_size:
        size = working_dimensions(*original.size, backend.working_size)
        if size != original.size:
            model_image = original.resize(size, Image.Resampling.LANCZOS)
            # Any pixel touched by the mask stays in the hole after downscaling.
            hole = hole.resize(size, Image.Resampling.BILINEAR).point(lambda v: 255 if v else 0)

    call = BackendCall(
        image=model_image,
        hole=hole,
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        denoising_strength=request.denoising_strength,
        num_inference_steps=request.num_inference_steps,
        guidance_scale=request.guidance_scale,
        seeds=seeds,
    )
    started = time.perf_counter()
    output = backend.inpaint(call, progress, is_cancelled)
    inference_seconds = time.perf_counter() - started
    images = [composite_images(original, generated, mask) for generated in output.images]
    return InpaintResult(
        images=images,
        seeds=seeds,
        engine=backend.name,
        model=output.model,
        width=original.width,
        height=original.height,
        inference_seconds=inference_seconds,
        metadata=dict(output.metadata),
    )
