"""What a loaded pipeline takes on for one job and gives back after it: a ControlNet (the
family's ControlNet pipeline built from the pipeline's parts), the whole-picture edit pipeline,
LoRAs (fused projections unfused while they are on) and an IP-Adapter. The pipelines built
from a loaded one are remembered by a weak reference to it: an unloaded pipeline is never
mistaken for a new one that took its memory address."""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..families import Family
from ..types import (
    ControlNetUse,
    EngineError,
    IpAdapterUse,
)
from .loading import _CONTROL, _EDIT, _free_memory, built_from, denoiser_of

#: Pipelines whose fused projections were unfused for a job's LoRAs (``_remove_loras`` fuses
#: them again).
_UNFUSED: weakref.WeakSet = weakref.WeakSet()


def _controlnet_pipeline(pipe: Any, family: Family, use: ControlNetUse) -> Any:
    """``pipe`` with the ControlNet of ``use``: ``family``'s ControlNet inpaint pipeline built
    from ``pipe``'s own parts (nothing copied), the ControlNet loaded from its folder's
    safetensors once per process. An ``EngineError`` names a ControlNet that does not fit."""
    import diffusers  # noqa: PLC0415 - heavy, as torch

    if not built_from(_CONTROL, pipe) or _CONTROL.get("path") != use.path:
        if _CONTROL:
            _CONTROL.clear()
            _free_memory()
        try:
            controlnet = diffusers.ControlNetModel.from_pretrained(
                use.path, torch_dtype=pipe.unet.dtype, use_safetensors=True, local_files_only=True
            ).to(pipe.unet.device)
        except Exception as exc:  # noqa: BLE001 - any loading failure becomes one message
            raise EngineError(
                f"The ControlNet {Path(use.path).name} could not be loaded ({type(exc).__name__}: "
                f"{exc})."
            ) from exc
        kind = getattr(diffusers, family.controlnet_pipeline)
        _CONTROL.update(
            base=weakref.ref(pipe), path=use.path, pipe=kind.from_pipe(pipe, controlnet=controlnet)
        )
        _CONTROL["pipe"].set_progress_bar_config(disable=True)
    return _CONTROL["pipe"]


def _at_least(picture: Any, side: int) -> Any:
    """``picture`` enlarged (Lanczos, its aspect ratio kept) so that its shorter side is at
    least ``side`` px; as it is when it already is."""
    shorter = min(picture.size)
    if shorter >= side:
        return picture
    factor = side / shorter
    size = (max(side, round(picture.width * factor)), max(side, round(picture.height * factor)))
    return picture.resize(size, Image.Resampling.LANCZOS)


def _edit_pipeline(pipe: Any, family: Family) -> Any:
    """``pipe``'s parts as ``family``'s whole-picture edit pipeline (nothing copied): ``pipe``
    itself where the family edits with the pipeline it inpaints with."""
    import diffusers  # noqa: PLC0415 - heavy, as torch

    if family.edit_pipeline == family.pipeline:
        return pipe
    if not built_from(_EDIT, pipe):
        edit_pipe = getattr(diffusers, family.edit_pipeline).from_pipe(pipe)
        _EDIT.update(base=weakref.ref(pipe), pipe=edit_pipe)
        _EDIT["pipe"].set_progress_bar_config(disable=True)
    return _EDIT["pipe"]


def control_image(image: Image.Image, hole: Image.Image) -> Any:
    """The inpaint ControlNet's control image: the picture in 0..1 with every pixel to
    regenerate set to -1 (control_v11p_sd15_inpaint's layout), as a [1, 3, H, W] tensor."""
    import torch  # noqa: PLC0415 - heavy, as above

    pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    pixels[np.asarray(hole) > 127] = -1.0
    return torch.from_numpy(pixels.transpose(2, 0, 1).copy())[None]


def _apply_loras(pipe: Any, loras: tuple[tuple[str, float], ...]) -> list[str]:
    """Load each LoRA file as an adapter of ``pipe`` at its weight (diffusers reads the kohya /
    A1111 and the diffusers / PEFT layouts); the adapters' names. Fused QKV projections (the
    CUDA fast path) are unfused first: a LoRA's q/k/v weights sit on the separate projections
    (``_remove_loras`` fuses them again). A file that does not fit the model is an
    ``EngineError`` that names it, and nothing of it stays loaded."""
    if not loras:
        return []
    if getattr(pipe, "fusing_unet", False):
        pipe.unfuse_qkv_projections()
        _UNFUSED.add(pipe)
    names = []
    try:
        for index, (path, _) in enumerate(loras):
            pipe.load_lora_weights(path, adapter_name=f"lora{index}")
            names.append(f"lora{index}")
        pipe.set_adapters(names, adapter_weights=[weight for _, weight in loras])
    except Exception as exc:  # noqa: BLE001 - any loading failure becomes one clear message
        _remove_loras(pipe)  # also a part of a LoRA that loaded before the failure
        failed = Path(loras[min(len(names), len(loras) - 1)][0]).name
        raise EngineError(
            f"The LoRA {failed} could not be applied to this model ({type(exc).__name__}: "
            f"{exc}); is it for this model's family?"
        ) from exc
    return names


def _load_ip_adapter(pipe: Any, use: IpAdapterUse) -> None:
    """The job's IP-Adapter and its image encoder into ``pipe`` (offline, from its folder), at
    its scale; ``unload_ip_adapter`` after the job puts the pipeline back as it was."""
    pipe.load_ip_adapter(
        use.path,
        subfolder="",
        weight_name=use.weight_name,
        image_encoder_folder="image_encoder",
        local_files_only=True,
    )
    encoder = pipe.image_encoder
    encoder.to(device=denoiser_of(pipe).device, dtype=denoiser_of(pipe).dtype)
    pipe.set_ip_adapter_scale(use.scale)


def _blended(on_step_end: Any, blend: Any) -> Any:
    """``on_step_end`` after soft inpainting's blend of the latents (``soft.SoftBlend``)."""

    def blended(pipeline: Any, step: int, timestep: Any, kwargs: dict) -> dict:
        kwargs["latents"] = blend(pipeline, step, kwargs["latents"])
        return on_step_end(pipeline, step, timestep, kwargs)

    return blended


def _remove_loras(pipe: Any) -> None:
    """The model's own weights again: every adapter unloaded, fused projections restored."""
    pipe.unload_lora_weights()
    if pipe in _UNFUSED:
        _UNFUSED.discard(pipe)
        pipe.fuse_qkv_projections()
