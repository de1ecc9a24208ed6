"""The memory plan: where a diffusion model's weights live on a CUDA worker, chosen from the
sizes of its parts and the GPU memory free when it loads, as a person would choose: the
fastest plan that fits (``PLANS``, fastest first), never a slower one than needed.

- ``gpu``: every part on the GPU in its dtype (bf16 / fp16).
- ``fp8``: the transformer's weights stored in fp8 (``float8_e4m3fn``) and cast to the compute
  dtype layer by layer as it runs (diffusers' layerwise casting): half its memory, the same
  arithmetic, pictures within a small distance (docs/model-library.md gives it).
- ``text-encoder-offload``: the text encoders stay in CPU memory and stream to the GPU leaf by
  leaf while they encode (diffusers' group offloading); the rest on the GPU. Once per job.
- ``fp8-text-encoder-offload``: both.
- ``model-offload``: each part moves to the GPU when it runs (the largest part must fit).
- ``sequential``: layer by layer (least memory, slowest): the last resort.

On the CPU there is one plan, ``cpu`` (everything in fp32, nothing offloaded), unless a plan is
asked for by name (``MODEL_MEMORY_PLAN``): ``fp8`` then stores the transformer in fp8 there too
(how the tests check its pictures). Pure Python: the loader measures, this decides.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)

GPU = "gpu"
FP8 = "fp8"
TEXT_ENCODER_OFFLOAD = "text-encoder-offload"
FP8_TEXT_ENCODER_OFFLOAD = "fp8-text-encoder-offload"
MODEL_OFFLOAD = "model-offload"
SEQUENTIAL = "sequential"
CPU = "cpu"
AUTO = "auto"

#: Fastest first: the planner takes the first that fits.
PLANS = (GPU, FP8, TEXT_ENCODER_OFFLOAD, FP8_TEXT_ENCODER_OFFLOAD, MODEL_OFFLOAD, SEQUENTIAL)
#: What ``MODEL_MEMORY_PLAN`` may say.
CHOICES = (AUTO, *PLANS)
#: The plans that store the transformer in fp8 (transformer families only: not a UNet).
FP8_PLANS = frozenset({FP8, FP8_TEXT_ENCODER_OFFLOAD})
#: The GPU memory a job needs beyond the weights (activations at 1024 px, the VAE's decode,
#: the allocator's slack), unless MODEL_MEMORY_HEADROOM_GB says otherwise.
DEFAULT_HEADROOM = 3 * 1024**3


#: The parts of a pipeline on the text side, by their names' start: the text encoders, and
#: FLUX.3 [klein]'s prompt upsampler (a language model that runs before them); counted as
#: text encoders, and offloaded with them.
TEXT_PARTS = ("text_encoder", "prompt_upsampler")


def is_text_part(name: str) -> bool:
    return name.startswith(TEXT_PARTS)


@dataclass(frozen=True)
class Parts:
    """The bytes of a model's weights in the dtype it runs in: its denoiser (transformer or
    UNet), its text encoders, and the rest (VAE, image encoders); ``fp8``: whether fp8
    storage is offered (for a transformer in bf16: not a UNet, not a quantized GGUF)."""

    denoiser: int
    text_encoders: int
    other: int
    fp8: bool = True

    @property
    def largest(self) -> int:
        return max(self.denoiser, self.text_encoders, self.other)


def needs(parts: Parts, plan: str, headroom: int = DEFAULT_HEADROOM) -> int:
    """The GPU memory ``plan`` needs for ``parts``: its weights on the GPU plus ``headroom``."""
    fp8_denoiser = parts.denoiser // 2  # bf16 / fp16 weights stored in 8 bits
    weights = {
        GPU: parts.denoiser + parts.text_encoders + parts.other,
        FP8: fp8_denoiser + parts.text_encoders + parts.other,
        TEXT_ENCODER_OFFLOAD: parts.denoiser + parts.other,
        FP8_TEXT_ENCODER_OFFLOAD: fp8_denoiser + parts.other,
        MODEL_OFFLOAD: parts.largest,
        SEQUENTIAL: 0,
    }[plan]
    return weights + headroom


def offered(parts: Parts) -> tuple[str, ...]:
    """The plans that apply to ``parts`` (no fp8 for a UNet, no text encoder to offload
    where there is none)."""
    return tuple(
        plan
        for plan in PLANS
        if (parts.fp8 or plan not in FP8_PLANS)
        and (parts.text_encoders or plan not in (TEXT_ENCODER_OFFLOAD, FP8_TEXT_ENCODER_OFFLOAD))
    )


def needs_by_plan(parts: Parts, headroom: int = DEFAULT_HEADROOM) -> dict[str, int]:
    """What each plan that applies needs: what the model list shows."""
    return {plan: needs(parts, plan, headroom) for plan in offered(parts)}


def choose(
    parts: Parts,
    free: int | None,
    *,
    asked: str = AUTO,
    headroom: int = DEFAULT_HEADROOM,
) -> str:
    """The plan for a model with ``parts`` on a device with ``free`` bytes of GPU memory
    (None: the CPU). ``asked`` (``MODEL_MEMORY_PLAN``, or the model's own) other than
    ``auto`` is taken as it is where it applies to ``parts`` (on the CPU only ``fp8`` means
    something: the others run as ``cpu``); where it does not (fp8 for a UNet or a GGUF
    transformer, a text encoder offload for a model without one), ``fallback`` says which."""
    if asked not in CHOICES:
        raise ValueError(f"MODEL_MEMORY_PLAN must be one of {', '.join(CHOICES)}.")
    if free is None:
        return FP8 if asked == FP8 and parts.fp8 else CPU
    if asked != AUTO:
        if asked in offered(parts):
            return asked
        plan = fallback(parts, asked, free, headroom)
        logger.warning(
            "memory plan %s does not apply to this model (%s); running it with %s instead",
            asked,
            "no fp8 storage for a UNet or a quantized transformer"
            if asked in FP8_PLANS and not parts.fp8
            else "no text encoder to offload",
            plan,
        )
        return plan
    for plan in offered(parts):
        if needs(parts, plan, headroom) <= free:
            return plan
    return SEQUENTIAL


def fallback(parts: Parts, asked: str, free: int, headroom: int = DEFAULT_HEADROOM) -> str:
    """The plan for ``parts`` when ``asked`` does not apply to them: ``asked`` without what
    does not apply (fp8 storage, the text encoders' offload) where that fits ``free``, else
    the fastest slower plan offered that does, else ``sequential``."""
    fp8 = asked in FP8_PLANS and parts.fp8
    offload = asked in (TEXT_ENCODER_OFFLOAD, FP8_TEXT_ENCODER_OFFLOAD) and parts.text_encoders
    closest = {
        (False, False): GPU,
        (True, False): FP8,
        (False, True): TEXT_ENCODER_OFFLOAD,
        (True, True): FP8_TEXT_ENCODER_OFFLOAD,
    }[(fp8, bool(offload))]
    slower = offered(parts)[offered(parts).index(closest) :]
    return next((plan for plan in slower if needs(parts, plan, headroom) <= free), SEQUENTIAL)
