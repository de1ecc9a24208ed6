"""Diffusion pipelines in a worker process: which family a model is, loading it once (a
single file with its family's configuration, or a diffusers folder), the speed-ups, and the
cache of loaded pipelines (least recently used unloaded first)."""

from __future__ import annotations

import gc
import json
import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from huggingface_hub import snapshot_download, try_to_load_from_cache
from huggingface_hub.errors import HFValidationError
from PIL import Image

from .. import memory
from ..families import FAMILIES, INDEX_FILES, Family, Unsupported, family_of_folder
from ..probe import config_folder, probe
from ..types import (
    EngineError,
)
from .picture_area import picture_area, working_area

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-inpainting"
#: The original repository was deleted from the Hub; its mirror has the same files.
MODEL_ALIASES = {"runwayml/stable-diffusion-inpainting": DEFAULT_MODEL}

#: Loaded pipelines, least recently used first: (model, device, compiled) -> pipeline.
_PIPELINES: OrderedDict[tuple[str, str, bool], Any] = OrderedDict()
#: What each loaded pipeline holds (``loaded_pipelines``), by the same key.
_HELD: dict[tuple[str, str, bool], dict[str, Any]] = {}
LOAD_LOCK = threading.Lock()
#: The ControlNet inpaint pipeline last built from a loaded one (``adapters``): ``base`` (a
#: weak reference to the loaded pipeline it shares its parts with), ``path`` (the ControlNet's
#: folder) and ``pipe``. One at a time: a ControlNet is loaded per job kind.
_CONTROL: dict[str, Any] = {}
#: The whole-picture edit pipeline last built from a loaded one (``Family.edit_pipeline``):
#: ``base`` and ``pipe``, as above.
_EDIT: dict[str, Any] = {}


def built_from(cache: dict[str, Any], pipe: Any) -> bool:
    """Whether ``cache``'s pipeline was built from ``pipe`` itself (a weak reference: an
    unloaded pipeline is never taken for a new one at its old memory address)."""
    base = cache.get("base")
    return base is not None and base() is pipe


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
        except (Unsupported, OSError) as exc:  # a file of this server's: no client mistake
            raise EngineError(f"The model at {path} cannot be identified: {exc}") from None
    try:
        cached = (try_to_load_from_cache(model, name) for name in INDEX_FILES)
        index = next((found for found in cached if isinstance(found, str)), None)
    except HFValidationError:  # neither a path here nor a Hub id: not on this machine
        return FAMILIES["sd15"]
    if index is None:
        return FAMILIES["sd15"]
    try:
        found = family_of_folder(json.loads(Path(index).read_text()))
    except (OSError, ValueError, AttributeError) as exc:
        raise EngineError(
            f"The model {model!r} cannot be identified: its cached pipeline index "
            f"is unreadable ({type(exc).__name__}: {exc})."
        ) from None
    if found is None:
        raise EngineError(
            f"The model {model!r} cannot be identified: its pipeline index names a pipeline "
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


def device_memory(device: str) -> int | None:
    """The memory of a GPU ``device`` (bytes), None for the CPU (or Apple's shared memory)."""
    import torch  # noqa: PLC0415 - torch: heavy, loaded only where a diffusion model runs

    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    return int(torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory)


def speed_up(
    pipe: Any, *, denoiser: str, channels_last: bool, fuse_qkv: bool, compile_unet: bool
) -> Any:
    """The fast path (SPEC §8): channels-last UNet and VAE for the UNet families, fused QKV
    projections where the model supports them, and optionally ``torch.compile`` on the
    denoiser (the UNet or the transformer); which of them a loaded pipeline gets:
    ``fast_path``. Attention is PyTorch's SDPA, diffusers' default on
    torch 2.

    A transformer family's VAE stays as it is: Qwen-Image-Edit's (3-D convolutions, 5-D
    weights) cannot take the format at all, and on an H100 (GPU kit, 2026-11-26) FLUX.2
    [klein]'s worker path was 0.92x the stock pipeline with a channels-last VAE, 1.03x without
    (single timed runs, docs/performance.md)."""
    import torch  # noqa: PLC0415 - torch: heavy, loaded only where a diffusion model runs

    if channels_last and denoiser == "unet":
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


def fast_path(device: str, plan: str, compile_unet: bool) -> dict[str, bool]:
    """``speed_up``'s switches for a pipeline on ``device`` under ``plan``: channels-last and
    fused QKV projections only for a compiled denoiser on CUDA. Eager, they made the worker's
    path slower, not faster: on an H100 (2026-11-27, ``bench/fast_path_parts.py``, median of
    3) the worker's path took 2.371 s with them and 1.641 s without for SD 1.5 at 50 steps,
    0.465 and 0.434 s at 10, and 2.546 and 2.338 s for SDXL at 30 (an eager profile counted
    about 7,900 layout copies an image from channels-last). Compiled, they pay off: SD 1.5
    0.884 s against the stock pipeline compiled 1.532 s (docs/performance.md)."""
    compiled_on_cuda = device == "cuda" and compile_unet
    return {
        "channels_last": compiled_on_cuda,
        "fuse_qkv": compiled_on_cuda and plan == memory.GPU,
        "compile_unet": compile_unet,
    }


def denoiser_of(pipe: Any) -> Any:
    """The pipeline's denoising network: its UNet (SD) or its transformer (FLUX)."""
    return pipe.unet if getattr(pipe, "unet", None) is not None else pipe.transformer


def warm_up(pipe: Any, family: Family, size: int) -> None:
    """One short call at the working size (and its area where the family's pipelines fix one),
    so compilation happens at worker start."""
    with picture_area(pipe, working_area(family, size)):
        short_call(pipe, family, size, size)


def short_call(pipe: Any, family: Family, width: int, height: int) -> None:
    """Two steps of ``pipe`` on a blank picture of ``width`` x ``height`` (its mask over all
    of it, given as the family reads one), to the latents: a compile's warm-up, a CUDA
    graph's capture."""
    import torch  # noqa: PLC0415 - torch: heavy, loaded only where a diffusion model runs

    mask = Image.new("L", (width, height), 255)
    with torch.inference_mode():
        pipe(
            prompt="warm-up",
            image=Image.new("RGB", (width, height)),
            **({family.mask_argument: mask} if family.mask_argument else {}),
            height=height,
            width=width,
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


def unload_all() -> None:
    """Every loaded pipeline unloaded and its memory freed (between benchmarks, tests)."""
    with LOAD_LOCK:
        _evict(0)


def _load_single_file(
    path: Path, configs: str | Path | None, dtype: Any, companion: str | Path | None = None
) -> Any:
    """A single-file checkpoint (its publisher's layout: ``.safetensors``, or a quantized
    ``.gguf`` transformer), loaded with its family's configuration folder, so nothing is
    fetched from the network. A file of the whole pipeline (SD) takes only the folder's JSON
    and tokenizers (shipped, or in ``configs``); a file of the denoiser alone (FLUX.1 Fill, and
    the GGUF transformers of Kontext, Qwen-Image-Edit and FLUX.2 [klein]) takes the other
    parts, weights included, from ``companion`` (an installed diffusers folder of the same
    family, chosen by the library) or else ``configs``' folder."""
    import diffusers  # noqa: PLC0415 - heavy, as torch

    found = probe(path)
    family = FAMILIES[found.family]
    folder = config_folder(configs, found)
    if family.single_file_denoiser and companion:
        folder = Path(companion)
    if not (folder / "model_index.json").is_file():
        what = (
            f"the {family.label} diffusers folder without its {family.denoiser}: the other "
            "parts with their weights, and the tokenizers; or install the diffusers model in "
            "the library"
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
    quantization = {}
    if found.layout == "gguf":
        quantization["quantization_config"] = diffusers.GGUFQuantizationConfig(compute_dtype=dtype)
    denoiser = getattr(diffusers, family.single_file_denoiser).from_single_file(
        str(path),
        config=str(folder),
        subfolder=family.denoiser,
        local_files_only=True,
        torch_dtype=dtype,
        **quantization,
    )
    return pipeline.from_pretrained(
        str(folder),
        dtype=dtype,
        use_safetensors=True,
        local_files_only=True,
        **_folder_parts(folder, family),
        **{family.denoiser: denoiser},
    )


def _cached_folder(model: str) -> str:
    """The folder of Hub model ``model`` in the local cache (never fetched here)."""
    return snapshot_download(model, local_files_only=True)


def _folder_parts(folder: Path, family: Family) -> dict[str, Any]:
    """Parts built here for ``from_pretrained`` of ``family``'s folder: Qwen-Image-Edit's
    picture processor where torchvision is missing (``qwen_vl``); else none."""
    if not family.vl_processor:
        return {}
    from .qwen_vl import processor_parts  # noqa: PLC0415 - transformers: heavy

    return processor_parts(folder)


def load_pipeline(
    model: str,
    device: str,
    compile_unet: bool = False,
    size: int = 512,
    cache_size: int = 1,
    configs: str | Path | None = None,
    memory_plan: str = memory.AUTO,
    headroom: int = memory.DEFAULT_HEADROOM,
    companion: str | Path | None = None,
) -> Any:
    """Load (once per process) an inpaint-capable diffusers pipeline from safetensors only
    (or a GGUF transformer, with its family's other parts from ``companion``).

    ``model`` is a diffusers folder, a Hub id in the local cache, or a single-file checkpoint
    (loaded with its family's configuration from ``configs``). At most ``cache_size``
    pipelines stay loaded: loading another unloads the least recently used first. On CUDA it
    runs in its family's dtype (fp16 for SD, bf16 for the flow-matching families) on the fast
    path (``speed_up``); ``compile_unet`` adds ``torch.compile`` and a warm-up call at
    ``size``. ``memory_plan`` (``engine.memory``): ``auto`` chooses on CUDA the fastest plan
    whose weights and ``headroom`` fit the free GPU memory (fp8 storage, text encoders or
    parts offloaded); a plan's name takes that plan."""
    if memory_plan not in memory.CHOICES:
        raise EngineError(f"MODEL_MEMORY_PLAN must be one of {', '.join(memory.CHOICES)}.")
    model = resolve_model(model)
    key = (model, device, compile_unet)
    with LOAD_LOCK:
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
                pipe = _load_single_file(Path(model), configs, dtype, companion)
            elif family.modular:
                from .modular import load as load_modular  # noqa: PLC0415 - heavy, as above

                folder = source if Path(source).is_dir() else _cached_folder(source)
                pipe = load_modular(Path(folder), family, dtype)
            else:
                parts = _folder_parts(Path(source), family) if Path(source).is_dir() else {}
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
        return _prepare(key, pipe, family, size, memory_plan, headroom)


def adopt_pipeline(
    model: str,
    pipe: Any,
    device: str,
    compile_unet: bool = False,
    size: int = 512,
    memory_plan: str = memory.AUTO,
) -> Any:
    """A pipeline built in this process (the GPU kit's random weights in a published
    configuration: a model too large to write to disk first) prepared and kept as
    ``load_pipeline`` prepares and keeps one it loads from ``model``, a folder with the
    family's configuration files; a ``DiffusersBackend`` of ``model`` then runs it."""
    with LOAD_LOCK:
        _evict(0)
        key, family = (model, device, compile_unet), family_of_model(model)
        return _prepare(key, pipe, family, size, memory_plan, memory.DEFAULT_HEADROOM)


def parts_of(pipe: Any, family: Family) -> memory.Parts:
    """The bytes of ``pipe``'s denoiser, text encoders and other parts, as loaded."""
    sizes = {"denoiser": 0, "text_encoders": 0, "other": 0}
    for name, part in pipe.components.items():
        held = _module_bytes(part)
        if name == family.denoiser:
            sizes["denoiser"] += held
        elif memory.is_text_part(name):
            sizes["text_encoders"] += held
        else:
            sizes["other"] += held
    quantized = getattr(getattr(pipe, family.denoiser), "hf_quantizer", None) is not None
    return memory.Parts(**sizes, fp8=family.denoiser == "transformer" and not quantized)


def _place(pipe: Any, family: Family, device: str, plan: str) -> Any:
    """Put ``pipe``'s weights where ``plan`` says (``engine.memory``)."""
    import torch  # noqa: PLC0415 - heavy, as above

    if plan in memory.FP8_PLANS:
        denoiser = getattr(pipe, family.denoiser)
        denoiser.enable_layerwise_casting(
            storage_dtype=torch.float8_e4m3fn, compute_dtype=denoiser.dtype
        )
    if plan == memory.MODEL_OFFLOAD:
        pipe.enable_model_cpu_offload(device=device)
    elif plan == memory.SEQUENTIAL:
        pipe.enable_sequential_cpu_offload(device=device)
    elif plan in (memory.TEXT_ENCODER_OFFLOAD, memory.FP8_TEXT_ENCODER_OFFLOAD):
        kept = [name for name in pipe.components if not memory.is_text_part(name)]
        pipe.enable_group_offload(
            onload_device=torch.device(device),
            offload_type="leaf_level",
            use_stream=True,
            exclude_modules=kept,
        )
    else:
        pipe = pipe.to(device)
    return pipe


def _prepare(
    key: tuple[str, str, bool],
    pipe: Any,
    family: Family,
    size: int,
    memory_plan: str,
    headroom: int,
):
    """Where the pipeline's weights live (``engine.memory``'s plan for the free GPU memory),
    the fast path (``speed_up``), a warm-up when compiled; kept in the cache under ``key``
    (model, device, compiled)."""
    import torch  # noqa: PLC0415 - heavy, as above

    model, device, compile_unet = key
    cuda = device == "cuda"
    parts = parts_of(pipe, family)
    free = torch.cuda.mem_get_info(torch.device(device))[0] if cuda else None
    plan = memory.choose(parts, free, asked=memory_plan, headroom=headroom)
    if cuda:
        logger.info(
            "%s: memory plan %s (%.1f GB of weights, %.1f GB free)",
            model,
            plan,
            (parts.denoiser + parts.text_encoders + parts.other) / 1e9,
            free / 1e9,
        )
    pipe = _place(pipe, family, device, plan)
    pipe.set_progress_bar_config(disable=True)
    speed_up(pipe, denoiser=family.denoiser, **fast_path(device, plan, compile_unet))
    if compile_unet:
        warm_up(pipe, family, size)
    _PIPELINES[key] = pipe
    _HELD[key] = {
        "model": model,
        "family": family.name,
        "bytes": pipeline_bytes(pipe),
        "dtype": str(denoiser_of(pipe).dtype).removeprefix("torch."),
        "plan": plan,
    }
    return pipe


def memory_plan_of(model: str, device: str, compile_unet: bool) -> str | None:
    """The memory plan the loaded pipeline of ``model`` runs under (None: not loaded)."""
    held = _HELD.get((model, device, compile_unet))
    return held["plan"] if held else None


def pipeline_bytes(pipe: Any) -> int:
    """The memory a pipeline's weights hold (every parameter and buffer of its parts)."""
    return sum(_module_bytes(part) for part in pipe.components.values())


def _module_bytes(part: Any) -> int:
    import torch  # noqa: PLC0415 - heavy, as above

    if not isinstance(part, torch.nn.Module):
        return 0
    tensors = [*part.parameters(), *part.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def loaded_models() -> list[str]:
    """The models whose pipelines this process holds now, least recently used first."""
    return [key[0] for key in _PIPELINES]


def loaded_pipelines() -> list[dict[str, Any]]:
    """What each pipeline this process holds is: model, family, bytes of weights, dtype and
    memory plan, least recently used first."""
    return [dict(_HELD[key]) for key in _PIPELINES if key in _HELD]
