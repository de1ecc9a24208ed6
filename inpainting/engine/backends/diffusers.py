"""Stable Diffusion inpainting through diffusers, loaded once per worker process."""

from __future__ import annotations

import gc
import threading
from pathlib import Path
from typing import Any

from ..previews import latents_to_jpeg
from ..schedulers import make_scheduler
from ..types import (
    BackendCall,
    BackendOutput,
    CancelCheck,
    Cancelled,
    EngineError,
    ProgressCallback,
    ProgressEvent,
)

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-inpainting"
#: The original repository was deleted from the Hub; its mirror has the same files.
MODEL_ALIASES = {"runwayml/stable-diffusion-inpainting": DEFAULT_MODEL}

_PIPELINES: dict[tuple[str, str], Any] = {}
_LOAD_LOCK = threading.Lock()


def resolve_model(model: str) -> str:
    return MODEL_ALIASES.get(model, model)


def resolve_device(requested: str = "auto") -> str:
    import torch

    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def load_pipeline(model: str, device: str) -> Any:
    """Load (once per process) an inpaint-capable diffusers pipeline from safetensors only."""
    model = resolve_model(model)
    key = (model, device)
    with _LOAD_LOCK:
        if key in _PIPELINES:
            return _PIPELINES[key]
        import torch
        from diffusers import AutoPipelineForInpainting

        dtype = torch.float16 if device == "cuda" else torch.float32
        source = str(Path(model)) if Path(model).is_dir() else model
        try:
            pipe = AutoPipelineForInpainting.from_pretrained(
                source, dtype=dtype, use_safetensors=True, local_files_only=True
            )
        except Exception as exc:  # any loading failure becomes one clear message
            raise EngineError(
                f"Could not load the diffusion model {model!r} from safetensors in the local "
                f"cache or folder ({type(exc).__name__}: {exc}). Run `python manage.py "
                "download_model` on a machine with network access, or set SD_INPAINT_MODEL "
                "to a local folder."
            ) from exc
        pipe = pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        _PIPELINES[key] = pipe
        return pipe


class DiffusersBackend:
    name = "diffusers"
    prefill = True  # outpainting starts from a PatchMatch fill of the new area

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        device: str = "auto",
        working_size: int = 512,
        preview_every: int = 5,
    ):
        self.model = resolve_model(model)
        self.device = resolve_device(device)
        self.working_size = working_size
        self.preview_every = preview_every  # 0 = no previews

    @property
    def loaded(self) -> bool:
        return (self.model, self.device) in _PIPELINES

    def load(self) -> Any:
        return load_pipeline(self.model, self.device)

    def inpaint(
        self, call: BackendCall, progress: ProgressCallback, is_cancelled: CancelCheck
    ) -> BackendOutput:
        import torch

        pipe = self.load()
        width, height = call.image.size
        steps = call.num_inference_steps
        # At least one denoising step: diffusers refuses a strength that leaves none.
        strength = max(call.denoising_strength, 1.0 / steps)
        count = len(call.seeds)
        generators = [torch.Generator(device="cpu").manual_seed(seed) for seed in call.seeds]

        def on_step_end(pipeline: Any, step: int, timestep: Any, kwargs: dict) -> dict:
            done, total = step + 1, pipeline.num_timesteps
            preview = None
            if self.preview_every and (done % self.preview_every == 0) and done < total:
                preview = latents_to_jpeg(kwargs["latents"][0].float().cpu().numpy())
            progress(ProgressEvent(step=done, total=total, preview=preview))
            if is_cancelled():
                raise Cancelled()
            return kwargs

        if is_cancelled():
            raise Cancelled()
        default_scheduler = pipe.scheduler
        if call.scheduler:
            pipe.scheduler = make_scheduler(call.scheduler, default_scheduler.config)
        try:
            with torch.inference_mode():
                # One batch entry per sample, so sample i draws every random number (VAE
                # posterior, noise) from generator i alone: each image is reproducible
                # from its own seed, in a batch or alone.
                result = pipe(
                    prompt=[call.prompt] * count,
                    negative_prompt=[call.negative_prompt] * count
                    if call.negative_prompt
                    else None,
                    image=[call.image] * count,
                    mask_image=[call.hole] * count,
                    height=height,
                    width=width,
                    strength=strength,
                    num_inference_steps=steps,
                    guidance_scale=call.guidance_scale,
                    num_images_per_prompt=1,
                    generator=generators,
                    callback_on_step_end=on_step_end,
                    callback_on_step_end_tensor_inputs=["latents"],
                    output_type="pil",
                )
        except torch.OutOfMemoryError as exc:
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            raise EngineError(
                "The GPU ran out of memory for this job; try a smaller image, fewer samples "
                "or inpaint_area=masked."
            ) from exc
        finally:
            used_scheduler = type(pipe.scheduler).__name__
            pipe.scheduler = default_scheduler  # the next job starts from the model's own
        return BackendOutput(
            images=list(result.images),
            model=self.model,
            metadata={
                "scheduler": call.scheduler or used_scheduler,
                "scheduler_class": used_scheduler,
                "device": self.device,
                "dtype": str(pipe.unet.dtype).removeprefix("torch."),
            },
        )
