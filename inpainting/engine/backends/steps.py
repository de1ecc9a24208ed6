"""The denoise loop's host side, kept from waiting on the device (issue 81): a step reads
nothing back from the GPU, so the host queues the next step's kernels while the GPU still
runs this one.

- **Timesteps on the host** (``host_timesteps``): the schedulers whose ``step`` reads the
  timestep as a number (DDIM, PNDM, DDPM, LCM index their tables with it and compare it:
  two waits a step on a timestep kept on the device) get their timesteps on the host; the
  denoiser (and a ControlNet) gets each one from a copy made on the device before the loop.
  The other schedulers keep their state where diffusers keeps it (sigmas on the host).
- **Previews without a wait** (``LatentReader``): a preview's latents are copied to pinned
  host memory without blocking; the JPEG is made at the first step after the copy is done
  (on the CPU: at once), never waited for, and dropped if the loop ends first.
- Progress is counted on the host (the step number, no tensor) and the cancel check reads no
  tensor.

The fast tier (``speed: "fast"``, ``step_cache``) is the one exception, by its nature: its
cache decides on the host, each step, whether the step can be reused.

Torch is imported in the functions: this module is loaded only where a diffusion model runs.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import numpy as np

#: The schedulers whose ``step`` reads the timestep on the host (diffusers 0.42: each
#: indexes ``alphas_cumprod`` with it and compares ``prev_timestep >= 0``).
HOST_STEP_SCHEDULERS = frozenset(
    {"DDIMScheduler", "PNDMScheduler", "DDPMScheduler", "LCMScheduler"}
)


def _timestep_argument(args: tuple, kwargs: dict) -> tuple[Any, bool]:
    """The timestep a denoiser is called with, and whether it came by keyword."""
    if "timestep" in kwargs:
        return kwargs["timestep"], True
    return (args[1] if len(args) > 1 else None), False


@contextmanager
def host_timesteps(pipe: Any, device: Any):
    """For the loop of one pipeline call: a scheduler of ``HOST_STEP_SCHEDULERS`` sets its
    timesteps on the host, and the denoiser and a ControlNet are handed the device copy of
    each, made once when the timesteps are set (``table``). Everything is put back after."""
    import torch  # noqa: PLC0415 - torch: heavy, loaded only where a diffusion model runs

    scheduler = pipe.scheduler
    if type(scheduler).__name__ not in HOST_STEP_SCHEDULERS:
        yield None
        return
    table: dict[float, Any] = {}
    set_timesteps = scheduler.set_timesteps

    def on_the_host(*args: Any, **kwargs: Any) -> Any:
        kwargs["device"] = "cpu"
        answer = set_timesteps(*args, **kwargs)
        values = scheduler.timesteps
        on_device = values.to(device, non_blocking=True)
        table.clear()
        table.update(zip(values.tolist(), on_device.unbind(), strict=True))
        return answer

    def handed_over(module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        timestep, by_keyword = _timestep_argument(args, kwargs)
        if not isinstance(timestep, torch.Tensor) or timestep.dim() != 0:
            return None
        if timestep.device.type != "cpu":
            return None  # on the device already (never read here: that would wait)
        # A host timestep: the scheduler's own number, so its device copy is in the table.
        found = table.get(float(timestep))
        if found is None:
            return None
        if by_keyword:
            return args, {**kwargs, "timestep": found}
        return (args[0], found, *args[2:]), kwargs

    networks = [pipe.unet if getattr(pipe, "unet", None) is not None else pipe.transformer]
    if getattr(pipe, "controlnet", None) is not None:
        networks.append(pipe.controlnet)
    scheduler.set_timesteps = on_the_host
    hooks = [n.register_forward_pre_hook(handed_over, with_kwargs=True) for n in networks]
    try:
        yield table
    finally:
        for hook in hooks:
            hook.remove()
        del scheduler.set_timesteps  # the class's own again


#: The fast tier's FirstBlockCache threshold: a step whose first block's output moved less
#: than this (relative) reuses the rest of the last step's (ParaAttention's FLUX value).
FAST_CACHE_THRESHOLD = 0.08


@contextmanager
def step_cache(denoiser: Any, speed: str):
    """For one pipeline call of the fast tier (``speed == "fast"``): diffusers'
    FirstBlockCache on the transformer; what the job's metadata says of it."""
    if speed != "fast":
        yield {}
        return
    from diffusers import FirstBlockCacheConfig  # noqa: PLC0415 - torch: heavy, as above

    denoiser.enable_cache(FirstBlockCacheConfig(threshold=FAST_CACHE_THRESHOLD))
    try:
        # One cache for the call where the pipeline names none (FLUX.1 Fill and Kontext: one
        # denoiser call a step); FLUX.2 [klein] and Qwen name their cond and uncond passes.
        with denoiser.cache_context("dreamlayer"):
            yield {"speed": "fast", "step_cache": f"first block, threshold {FAST_CACHE_THRESHOLD}"}
    finally:
        denoiser.disable_cache()


class LatentReader:
    """A preview's latents brought to the host without waiting on the device: ``start``
    queues the copy (to pinned memory, behind the step's kernels) and ``take`` returns them
    once the copy is done, None until then."""

    def __init__(self) -> None:
        self._buffer: Any = None
        self._done: Any = None  # the copy's CUDA event; None: on the host already
        self._pending = False

    @property
    def pending(self) -> bool:
        return self._pending

    def start(self, latents: Any) -> None:
        import torch  # noqa: PLC0415 - torch: heavy, loaded only where a diffusion model runs

        if latents.device.type == "cuda":
            if self._buffer is None or self._buffer.shape != latents.shape:
                self._buffer = torch.empty(latents.shape, dtype=torch.float32, pin_memory=True)
            self._buffer.copy_(latents, non_blocking=True)
            self._done = torch.cuda.Event()
            self._done.record()
        else:
            self._buffer, self._done = latents.float(), None
        self._pending = True

    def take(self) -> np.ndarray | None:
        if not self._pending or (self._done is not None and not self._done.query()):
            return None
        self._pending = False
        return np.array(self._buffer.numpy(), copy=True)
