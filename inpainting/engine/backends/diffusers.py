"""Stable Diffusion inpainting through diffusers, loaded once per worker process."""

from __future__ import annotations

import gc
import json
import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from huggingface_hub import try_to_load_from_cache
from huggingface_hub.errors import HFValidationError
from PIL import Image

from ..families import FAMILIES, Family, family_of_folder
from ..previews import latents_to_jpeg
from ..probe import config_folder, probe, probe_checkpoint
from ..prompts import parse_weights, plain_text
from ..schedulers import make_scheduler
from ..types import (
    BackendCall,
    BackendOutput,
    CancelCheck,
    Cancelled,
    ControlNetUse,
    EngineError,
    InvalidInput,
    IpAdapterUse,
    ProgressCallback,
    ProgressEvent,
)

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-inpainting"
#: The original repository was deleted from the Hub; its mirror has the same files.
MODEL_ALIASES = {"runwayml/stable-diffusion-inpainting": DEFAULT_MODEL}

#: Loaded pipelines, least recently used first: (model, device, compiled) -> pipeline.
_PIPELINES: OrderedDict[tuple[str, str, bool], Any] = OrderedDict()
#: What each loaded pipeline holds (``loaded_pipelines``), by the same key.
_HELD: dict[tuple[str, str, bool], dict[str, Any]] = {}
#: MODEL_OFFLOAD's choices (``load_pipeline``).
OFFLOAD_MODES = ("none", "model", "sequential")
_LOAD_LOCK = threading.Lock()


def resolve_model(model: str) -> str:
    return MODEL_ALIASES.get(model, model)


def family_of_model(model: str) -> Family:
    """The family of ``model``: a folder or a single file (probed), or a Hub id (from its
    cached ``model_index.json``). A model this machine does not have is taken for Stable
    Diffusion 1.5 (the default model's family): loading it fails with its own message. One it
    has but cannot identify is an ``EngineError`` that says why."""
    path = Path(model)
    if path.exists():
        try:
            return FAMILIES[probe(path).family]
        except (InvalidInput, OSError) as exc:
            raise EngineError(f"The model at {path} cannot be identified: {exc}") from None
    try:
        index = try_to_load_from_cache(model, "model_index.json")
    except HFValidationError:  # neither a path here nor a Hub id: not on this machine
        return FAMILIES["sd15"]
    if not isinstance(index, str):
        return FAMILIES["sd15"]
    try:
        found = family_of_folder(json.loads(Path(index).read_text()))
    except (OSError, ValueError, AttributeError) as exc:
        raise EngineError(
            f"The model {model!r} cannot be identified: its cached model_index.json "
            f"is unreadable ({type(exc).__name__}: {exc})."
        ) from None
    if found is None:
        raise EngineError(
            f"The model {model!r} cannot be identified: its model_index.json names a pipeline "
            f"no family reads (the families: {', '.join(FAMILIES)})."
        )
    return found


def resolve_device(requested: str = "auto") -> str:
    import torch  # noqa: PLC0415 - torch: heavy, loaded only where a diffusion model runs

    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def speed_up(
    pipe: Any, *, denoiser: str, channels_last: bool, fuse_qkv: bool, compile_unet: bool
) -> Any:
    """The fast path (SPEC §8): channels-last UNet and VAE (convolutions; a transformer has
    none to speed up), fused QKV projections where the model supports them, and optionally
    ``torch.compile`` on the denoiser (the UNet or the transformer). Attention is PyTorch's
    SDPA, diffusers' default on torch 2."""
    import torch  # noqa: PLC0415 - torch: heavy, loaded only where a diffusion model runs

    if channels_last:
        if denoiser == "unet":
            pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    if fuse_qkv:
        try:
            pipe.fuse_qkv_projections()
        except (AttributeError, ValueError, NotImplementedError) as exc:
            logger.info("fused QKV projections are not supported by this model: %s", exc)
    if compile_unet:
        setattr(pipe, denoiser, torch.compile(getattr(pipe, denoiser)))
    return pipe


def denoiser_of(pipe: Any) -> Any:
    """The pipeline's denoising network: its UNet (SD) or its transformer (FLUX)."""
    return pipe.unet if getattr(pipe, "unet", None) is not None else pipe.transformer


def warm_up(pipe: Any, size: int) -> None:
    """One short call at the working size, so compilation happens at worker start."""
    import torch  # noqa: PLC0415 - torch: heavy, loaded only where a diffusion model runs

    image = Image.new("RGB", (size, size))
    with torch.inference_mode():
        pipe(
            prompt="warm-up",
            image=image,
            mask_image=Image.new("L", (size, size), 255),
            height=size,
            width=size,
            num_inference_steps=2,
            output_type="latent",
        )


def _free_memory() -> None:
    gc.collect()
    import torch  # noqa: PLC0415 - torch: heavy, loaded only where a diffusion model runs

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _evict(keep: int) -> None:
    """Unload the least recently used pipelines until at most ``keep`` stay (memory freed)."""
    if len(_PIPELINES) > keep:
        _CONTROL.clear()  # it shares a pipeline's parts: it goes with them
        _EDIT.clear()  # as it does
    while len(_PIPELINES) > keep:
        key, pipe = _PIPELINES.popitem(last=False)
        _HELD.pop(key, None)
        logger.info("unloading %s to make room (MODEL_CACHE_SIZE)", key[0])
        del pipe
        _free_memory()


def _load_single_file(path: Path, configs: str | Path | None, dtype: Any) -> Any:
    """A single-file checkpoint (its publisher's layout), loaded with its family's
    configuration folder (shipped, or in ``configs``), so nothing is fetched from the
    network. A file of the whole pipeline (SD) takes only the folder's JSON and tokenizers; a
    file of the denoiser alone (FLUX.1 Fill) takes the other parts, weights included, from
    the folder."""
    import diffusers  # noqa: PLC0415 - heavy, as torch

    found = probe_checkpoint(path)
    family = FAMILIES[found.family]
    folder = config_folder(configs, found)
    if not (folder / "model_index.json").is_file():
        what = (
            f"the {family.label} diffusers folder without its {family.denoiser}: the other "
            "parts with their weights, and the tokenizers"
            if family.single_file_denoiser
            else "the JSON and tokenizer files of its diffusers folder"
        )
        raise EngineError(
            f"{path.name} is a single-file {found.family} checkpoint; its pipeline configuration "
            f"({folder.name}/ in MODEL_CONFIGS_DIR: {what}) is not on this machine."
        )
    pipeline = getattr(diffusers, family.pipeline)
    if family.single_file_denoiser is None:
        return pipeline.from_single_file(
            str(path), config=str(folder), local_files_only=True, torch_dtype=dtype
        )
    denoiser = getattr(diffusers, family.single_file_denoiser).from_single_file(
        str(path),
        config=str(folder),
        subfolder=family.denoiser,
        local_files_only=True,
        torch_dtype=dtype,
    )
    return pipeline.from_pretrained(
        str(folder),
        dtype=dtype,
        use_safetensors=True,
        local_files_only=True,
        **{family.denoiser: denoiser},
    )


def load_pipeline(
    model: str,
    device: str,
    compile_unet: bool = False,
    size: int = 512,
    cache_size: int = 1,
    configs: str | Path | None = None,
    offload: str = "none",
) -> Any:
    """Load (once per process) an inpaint-capable diffusers pipeline from safetensors only.

    ``model`` is a diffusers folder, a Hub id in the local cache, or a single-file checkpoint
    (loaded with its family's configuration from ``configs``). At most ``cache_size``
    pipelines stay loaded: loading another unloads the least recently used first. On CUDA it
    runs in its family's dtype (fp16 for SD, bf16 for the flow-matching families) on the fast
    path (``speed_up``); ``compile_unet`` adds ``torch.compile`` and a warm-up call at
    ``size``. ``offload`` (CUDA only): ``model`` keeps each part in CPU memory until it runs
    (a 24 GB card runs FLUX.1 Fill), ``sequential`` moves it layer by layer (least GPU
    memory, slowest), ``none`` keeps everything on the GPU."""
    if offload not in OFFLOAD_MODES:
        raise EngineError(f"MODEL_OFFLOAD must be one of {', '.join(OFFLOAD_MODES)}.")
    model = resolve_model(model)
    key = (model, device, compile_unet)
    with _LOAD_LOCK:
        if key in _PIPELINES:
            _PIPELINES.move_to_end(key)
            return _PIPELINES[key]
        _evict(max(cache_size, 1) - 1)
        import diffusers  # noqa: PLC0415 - heavy, as torch
        import torch  # noqa: PLC0415 - torch: heavy, loaded only where a diffusion model runs

        family = family_of_model(model)
        dtype = getattr(torch, family.cuda_dtype) if device == "cuda" else torch.float32
        source = str(Path(model)) if Path(model).is_dir() else model
        try:
            if Path(model).is_file():
                pipe = _load_single_file(Path(model), configs, dtype)
            else:
                parts = {}
                if family.vl_processor and Path(source).is_dir():
                    from .qwen_vl import processor_parts  # noqa: PLC0415 - transformers: heavy

                    parts = processor_parts(Path(source))
                pipe = getattr(diffusers, family.pipeline).from_pretrained(
                    source, dtype=dtype, use_safetensors=True, local_files_only=True, **parts
                )
        except EngineError:
            raise
        except Exception as exc:  # any loading failure becomes one clear message
            raise EngineError(
                f"Could not load the diffusion model {model!r} from safetensors in the local "
                f"cache or folder ({type(exc).__name__}: {exc}). Run `python manage.py "
                "download_model` on a machine with network access, or set SD_INPAINT_MODEL "
                "to a local folder."
            ) from exc
        cuda = device == "cuda"
        if cuda and offload == "model":
            pipe.enable_model_cpu_offload(device=device)
        elif cuda and offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=device)
        else:
            pipe = pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        speed_up(
            pipe,
            denoiser=family.denoiser,
            channels_last=cuda,
            fuse_qkv=cuda and offload == "none",
            compile_unet=compile_unet,
        )
        if compile_unet:
            warm_up(pipe, size)
        _PIPELINES[key] = pipe
        _HELD[key] = {
            "model": model,
            "family": family.name,
            "bytes": pipeline_bytes(pipe),
            "dtype": str(denoiser_of(pipe).dtype).removeprefix("torch."),
            "offload": offload if cuda else "none",
        }
        return pipe


def pipeline_bytes(pipe: Any) -> int:
    """The memory a pipeline's weights hold (every parameter and buffer of its parts)."""
    import torch  # noqa: PLC0415 - heavy, as above

    total = 0
    for part in pipe.components.values():
        if isinstance(part, torch.nn.Module):
            tensors = [*part.parameters(), *part.buffers()]
            total += sum(t.numel() * t.element_size() for t in tensors)
    return total


def loaded_models() -> list[str]:
    """The models whose pipelines this process holds now, least recently used first."""
    return [key[0] for key in _PIPELINES]


def loaded_pipelines() -> list[dict[str, Any]]:
    """What each pipeline this process holds is: model, family, bytes of weights, dtype and
    offload, least recently used first."""
    return [dict(_HELD[key]) for key in _PIPELINES if key in _HELD]


#: The ControlNet inpaint pipeline last used: (the pipeline it shares its parts with, the
#: ControlNet's folder) and the pipeline. One at a time: a ControlNet is loaded per job kind.
_CONTROL: dict[str, Any] = {}


def _controlnet_pipeline(pipe: Any, family: Family, use: ControlNetUse) -> Any:
    """``pipe`` with the ControlNet of ``use``: ``family``'s ControlNet inpaint pipeline built
    from ``pipe``'s own parts (nothing copied), the ControlNet loaded from its folder's
    safetensors once per process. An ``EngineError`` names a ControlNet that does not fit."""
    import diffusers  # noqa: PLC0415 - heavy, as torch

    key = (id(pipe), use.path)
    if _CONTROL.get("key") != key:
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
        _CONTROL.update(key=key, pipe=kind.from_pipe(pipe, controlnet=controlnet))
        _CONTROL["pipe"].set_progress_bar_config(disable=True)
    return _CONTROL["pipe"]


#: The whole-picture edit pipeline last used: (the pipeline it shares its parts with) and the
#: pipeline (``Family.edit_pipeline``, built from the loaded one's parts).
_EDIT: dict[str, Any] = {}


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
    """``pipe``'s parts as ``family``'s whole-picture edit pipeline (nothing copied)."""
    import diffusers  # noqa: PLC0415 - heavy, as torch

    if _EDIT.get("key") != id(pipe):
        _EDIT.update(key=id(pipe), pipe=getattr(diffusers, family.edit_pipeline).from_pipe(pipe))
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
        pipe.dreamlayer_refuse = True
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
    if getattr(pipe, "dreamlayer_refuse", False):
        pipe.dreamlayer_refuse = False
        pipe.fuse_qkv_projections()


class DiffusersBackend:
    name = "diffusers"
    prefill = True  # outpainting starts from a PatchMatch fill of the new area
    uses_masked_content = True  # it starts from the picture's latents
    supports_batch = True
    max_pixels = max_hole_pixels = None  # brought to its working size
    context_share = 0.0  # the request's padding (A1111's only-masked padding) sets the crop

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        device: str = "auto",
        working_size: int | None = None,
        preview_every: int = 5,
        compile_unet: bool = False,
        cache_size: int = 1,
        configs: str | None = None,
        offload: str = "none",
    ):
        self.model = resolve_model(model)
        self.offload = offload
        self.family = family_of_model(self.model)
        self.edits = self.family.edits
        # An edit reads each job's pictures with its words: one job per pipeline call.
        self.supports_batch = not self.family.edits
        self.size_multiple = self.family.size_multiple
        self.cache_size = cache_size
        self.configs = configs
        self.device = resolve_device(device)
        self.working_size = working_size or self.family.working_size
        self.preview_every = preview_every  # 0 = no previews
        self.compile_unet = compile_unet

    @property
    def loaded(self) -> bool:
        return (self.model, self.device, self.compile_unet) in _PIPELINES

    def load(self) -> Any:
        return load_pipeline(
            self.model,
            self.device,
            self.compile_unet,
            self.working_size,
            self.cache_size,
            self.configs,
            self.offload,
        )

    def inpaint(
        self, call: BackendCall, progress: ProgressCallback, is_cancelled: CancelCheck
    ) -> BackendOutput:
        return self.inpaint_batch([call], [progress], [is_cancelled])[0]

    def inpaint_batch(
        self,
        calls: list[BackendCall],
        progresses: list[ProgressCallback],
        cancel_checks: list[CancelCheck],
    ) -> list[BackendOutput]:
        """One pipeline call for several jobs of one size, step count, strength, guidance and
        scheduler (``runner.batch_key``): one batch entry per sample of each job, each with its
        own prompt, image, mask and seed. Progress goes to every job; the batch stops when
        every job in it is cancelled (a job cancelled alone is already recorded as cancelled,
        and its images are dropped)."""
        import torch  # noqa: PLC0415 - torch: heavy, loaded only where a diffusion model runs

        from .conditioning import encode  # noqa: PLC0415 - torch, as above
        from .soft import SoftBlend, has_gray  # noqa: PLC0415 - torch, as above

        started = time.perf_counter()
        had_it = self.loaded
        pipe = self.load()
        load_seconds = None if had_it else round(time.perf_counter() - started, 3)
        first = calls[0]
        width, height = first.image.size
        steps = first.num_inference_steps
        # At least one denoising step: diffusers refuses a strength that leaves none.
        strength = max(first.denoising_strength, 1.0 / steps)
        entries = [(call, seed) for call in calls for seed in call.seeds]
        generators = [torch.Generator(device="cpu").manual_seed(seed) for _, seed in entries]

        def all_cancelled() -> bool:
            return all(check() for check in cancel_checks)

        family = self.family
        if family.edits:
            return [
                self._edit(pipe, call, progress, check, load_seconds)
                for call, progress, check in zip(calls, progresses, cancel_checks, strict=True)
            ]
        on_step_end = self._step_callback(calls, progresses, all_cancelled)
        if all_cancelled():
            raise Cancelled()
        soft = first.soft and family.capabilities.soft_inpainting
        control = first.controlnet
        if (
            (control and not family.capabilities.controlnet)
            or (first.loras and not family.capabilities.loras)
            or (first.ip_adapter and not family.capabilities.ip_adapter)
        ):
            raise EngineError(f"{family.label} models take no ControlNet, LoRA or IP-Adapter here.")
        runner = _controlnet_pipeline(pipe, family, control) if control else pipe
        default_scheduler = runner.scheduler
        adapters: list[str] = []
        ip_loaded = False
        extra: dict[str, Any] = dict(family.call_arguments)
        if control:
            extra |= {
                "control_image": torch.cat(
                    [control_image(call.image, call.hole) for call, _ in entries]
                ).to(pipe.unet.device, pipe.unet.dtype),
                "controlnet_conditioning_scale": control.conditioning_scale,
                "control_guidance_start": control.guidance_start,
                "control_guidance_end": control.guidance_end,
            }
        try:
            if first.scheduler and family.capabilities.schedulers:
                runner.scheduler = make_scheduler(first.scheduler, default_scheduler.config)
            adapters = _apply_loras(pipe, first.loras)
            if first.ip_adapter:  # one job a batch (runner.batch_key): its reference picture
                ip_loaded = True  # from here on, unloaded whatever happens
                _load_ip_adapter(runner, first.ip_adapter)
                extra["ip_adapter_image"] = first.reference_images[0]
            with torch.inference_mode():
                if soft and any(has_gray(call.weights) for call in calls):
                    on_step_end = _blended(on_step_end, SoftBlend(runner, entries))
                if family.text_encoding == "weighted":
                    # Weighted prompts, long prompts in chunks, clip skip: each prompt
                    # encoded on its own, so an entry's embeddings do not depend on its batch.
                    conditioning = encode(
                        pipe,
                        [call.prompt for call, _ in entries],
                        [call.negative_prompt for call, _ in entries],
                        first.clip_skip,
                    )
                else:  # the pipeline encodes the words as written (no weights)
                    conditioning = {
                        "prompt": [plain_text(parse_weights(call.prompt)) for call, _ in entries]
                    }
                    if family.capabilities.negative_prompt:
                        conditioning["negative_prompt"] = [
                            plain_text(parse_weights(call.negative_prompt, field="negative_prompt"))
                            for call, _ in entries
                        ]
                # One batch entry per sample, so sample i draws every random number (VAE
                # posterior, noise) from generator i alone: each image is reproducible
                # from its own seed, in a batch or alone.
                result = runner(
                    **conditioning,
                    **extra,
                    image=[call.image for call, _ in entries],
                    mask_image=[call.hole for call, _ in entries],
                    height=height,
                    width=width,
                    strength=strength,
                    num_inference_steps=steps,
                    guidance_scale=first.guidance_scale,
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
            used_scheduler = type(runner.scheduler).__name__
            runner.scheduler = default_scheduler  # the next job starts from the model's own
            if adapters:  # and without this job's LoRAs: the model's own weights again
                _remove_loras(pipe)
            if ip_loaded:  # and without its IP-Adapter
                runner.unload_ip_adapter()
        outputs, images = [], list(result.images)
        for call in calls:
            outputs.append(
                BackendOutput(
                    images=images[: len(call.seeds)],
                    model=self.model,
                    metadata={
                        "scheduler": (family.capabilities.schedulers and call.scheduler)
                        or used_scheduler,
                        "scheduler_class": used_scheduler,
                        **self._metadata(pipe, load_seconds),
                        "batched_jobs": len(calls),
                        **({"soft_inpainting": True} if soft and has_gray(call.weights) else {}),
                    },
                )
            )
            images = images[len(call.seeds) :]
        return outputs

    def _metadata(self, pipe: Any, load_seconds: float | None) -> dict[str, Any]:
        return {
            "device": self.device,
            "dtype": str(denoiser_of(pipe).dtype).removeprefix("torch."),
            "family": self.family.name,
            **({"model_load_seconds": load_seconds} if load_seconds else {}),
        }

    def _step_callback(
        self,
        calls: list[BackendCall],
        progresses: list[ProgressCallback],
        all_cancelled: CancelCheck,
        sample: tuple[int, int] = (0, 1),
    ) -> Any:
        """The pipeline's ``callback_on_step_end``: progress (and a latent preview every
        ``preview_every`` steps) to each call's job, and ``Cancelled`` once every job is.
        ``sample`` (index, count): one call's samples run one pipeline call each, and the
        steps count across them."""
        width, height = calls[0].image.size
        latent_grid = (height // 8, width // 8)  # every family's VAE: 8 px per latent
        index, count = sample

        def on_step_end(pipeline: Any, step: int, timestep: Any, kwargs: dict) -> dict:
            done, total = step + 1, pipeline.num_timesteps
            offset = 0
            for call, progress in zip(calls, progresses, strict=True):
                preview = None
                if self.preview_every and (done % self.preview_every == 0) and done < total:
                    latents = kwargs["latents"][offset].float().cpu().numpy()
                    preview = latents_to_jpeg(latents, self.family.preview, latent_grid)
                progress(
                    ProgressEvent(step=index * total + done, total=count * total, preview=preview)
                )
                offset += len(call.seeds)
            if all_cancelled():
                raise Cancelled()
            return kwargs

        return on_step_end

    def _edit(
        self,
        pipe: Any,
        call: BackendCall,
        progress: ProgressCallback,
        is_cancelled: CancelCheck,
        load_seconds: float | None,
    ) -> BackendOutput:
        """An instruction edit (an edit family). A hole over the whole picture (a request
        without a mask) runs the family's edit pipeline on the picture; a hole inside it runs
        the mask pipeline, which regenerates the hole only, or, with reference pictures
        (which only the edit pipeline reads), the edit pipeline, its result composited
        through the mask by the runner as every result is. One pipeline call per sample."""
        import torch  # noqa: PLC0415 - torch: heavy, loaded only where a diffusion model runs

        family = self.family
        references = [_at_least(r, family.min_picture_side) for r in call.reference_images]
        if len(references) > family.reference_images:
            raise InvalidInput(
                f"{family.label} reads at most {family.reference_images} reference pictures "
                f"beside the one it edits; {len(references)} were given.",
                field="reference_images",
            )
        whole = call.hole.getextrema()[0] == 255
        steps = call.num_inference_steps
        arguments: dict[str, Any] = {
            **family.call_arguments,
            family.guidance_argument: call.guidance_scale,
        }
        if whole or references:
            runner = _edit_pipeline(pipe, family)
            arguments["image"] = (
                [call.image, *references] if family.reference_images else call.image
            )
        else:
            runner = pipe
            arguments |= {
                "image": call.image,
                "mask_image": call.hole,
                "strength": max(call.denoising_strength, 1.0 / steps),
            }
        if family.capabilities.negative_prompt:
            negative = plain_text(parse_weights(call.negative_prompt, field="negative_prompt"))
            arguments["negative_prompt"] = negative or " "  # Qwen's own examples: one space
        width, height = call.image.size
        if family.area_argument:
            arguments[family.area_argument] = width * height
        images = []
        for index, seed in enumerate(call.seeds):
            if is_cancelled():
                raise Cancelled()
            with torch.inference_mode():
                result = runner(
                    prompt=plain_text(parse_weights(call.prompt)),
                    height=height,
                    width=width,
                    num_inference_steps=steps,
                    generator=torch.Generator(device="cpu").manual_seed(seed),
                    callback_on_step_end=self._step_callback(
                        [call], [progress], is_cancelled, (index, len(call.seeds))
                    ),
                    callback_on_step_end_tensor_inputs=["latents"],
                    output_type="pil",
                    **arguments,
                )
            images.append(result.images[0])
        return BackendOutput(
            images=images,
            model=self.model,
            metadata={
                **self._metadata(pipe, load_seconds),
                "edit": "whole" if whole else "masked",
                "edit_pipeline": type(runner).__name__,
                "reference_images": len(references),
                "batched_jobs": 1,
            },
        )
