"""AUTOMATIC1111's web UI API shapes: the img2img answer (base64 PNGs, the request echoed as
``parameters``, ``info`` as a JSON string), progress, the model / sampler / scheduler lists,
the options, PNG info and the error body."""

from __future__ import annotations

import base64
import http
import json
import math
from pathlib import Path
from typing import Any

from ..engine.engines import runs_a_model
from ..engine.images import MAX_INFOTEXT, parse_a1111_parameters
from ..engine.schedulers import SCHEDULERS as SCHEDULER_CLASSES
from ..engine.schedulers import scheduler_names
from ..models import Generation, LibraryModel
from ..params import GenerationParams

VERSION = "DreamLayer (AUTOMATIC1111 API)"

#: A1111's sampler names -> (DreamLayer's scheduler, A1111's aliases for it). A1111 1.9 and
#: later name the noise schedule apart (``scheduler``): "karras" turns "DPM++ 2M" into
#: "DPM++ 2M Karras", the only Karras schedule here.
SAMPLERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "Euler a": ("Euler a", ("k_euler_a", "k_euler_ancestral")),
    "Euler": ("Euler", ("k_euler",)),
    "LMS": ("LMS", ("k_lms",)),
    "Heun": ("Heun", ("k_heun",)),
    "DPM++ 2M": ("DPM++ 2M", ("k_dpmpp_2m",)),
    "DPM++ 2M Karras": ("DPM++ 2M Karras", ("k_dpmpp_2m_ka",)),
    "DDIM": ("DDIM", ("ddim",)),
    "PLMS": ("PNDM", ("plms",)),
    "UniPC": ("UniPC", ("unipc",)),
    "LCM": ("LCM", ("lcm",)),
}
#: A1111's noise schedules (``scheduler``, A1111 1.9 and later) -> (its label, the one that
#: runs here): the sampler's own, or Karras (DPM++ 2M only). A1111 1.10's uniform-in-time
#: schedules (``normal``, its default ``uniform``, ``simple``, ``sgm_uniform``, ``ddim``) space
#: the steps as the samplers here do by their own, so they run as ``automatic``.
SCHEDULES: dict[str, tuple[str, str]] = {
    "automatic": ("Automatic", "automatic"),
    "uniform": ("Uniform", "automatic"),
    "karras": ("Karras", "karras"),
    "sgm_uniform": ("SGM Uniform", "automatic"),
    "simple": ("Simple", "automatic"),
    "normal": ("Normal", "automatic"),
    "ddim": ("DDIM", "automatic"),
}
#: A1111 1.10's and Forge's schedules that do not run here (their sigmas differ from every
#: schedule above): a request naming one runs ``automatic`` and ``info.warnings`` says so, as
#: for a name A1111 does not know (A1111 falls back to automatic for those).
OTHER_SCHEDULES = (
    "exponential", "polyexponential", "kl_optimal", "align_your_steps", "beta", "turbo",
    "align_your_steps_GITS", "align_your_steps_11", "align_your_steps_32",
)  # fmt: skip
#: A1111's sampler when a request names none (A1111 1.10's first sampler).
DEFAULT_SAMPLER = "DPM++ 2M"
#: A1111's ``inpainting_fill`` values -> what a diffusion model starts the masked area from.
INPAINTING_FILL = {0: "fill", 1: "original", 2: "noise", 3: "nothing"}
#: A1111's ``resize_mode`` values -> DreamLayer's resize modes (3, "just resize (latent
#: upscale)", resizes the pixels like 0: there is no latent upscaler here).
RESIZE_MODES = {0: "stretch", 1: "crop", 2: "fill", 3: "stretch"}


def samplers() -> list[dict[str, Any]]:
    """``GET /sdapi/v1/samplers``: the samplers this installation can build."""
    available = set(scheduler_names())
    return [
        {"name": name, "aliases": list(aliases), "options": {}}
        for name, (scheduler, aliases) in SAMPLERS.items()
        if scheduler in available
    ]


def schedules() -> list[dict[str, Any]]:
    """``GET /sdapi/v1/schedulers``."""
    return [
        {"name": name, "label": label, "aliases": None, "default_rho": -1.0,
         "need_inner_model": False}
        for name, (label, _) in SCHEDULES.items()
    ]  # fmt: skip


def schedule_of(name: str) -> tuple[str, str | None]:
    """The schedule that runs for A1111's ``scheduler`` (its name or label, any case; blank:
    automatic), and the warning when it is not the one named: a known schedule that does not
    run here, or a name A1111 does not know, runs ``automatic`` as A1111 falls back."""
    wanted = name.strip().lower() or "automatic"
    for key, (label, runs) in SCHEDULES.items():
        if wanted in (key, label.lower()):
            return runs, None
    known = next((other for other in OTHER_SCHEDULES if other.lower() == wanted), None)
    why = "does not run here" if known else "is not a schedule A1111 knows"
    return "automatic", (
        f"The scheduler {name.strip()!r} {why}; the sampler's own schedule (automatic) ran. "
        f"Schedules here: {', '.join(SCHEDULES)}."
    )


def sampler_title(scheduler: str | None) -> str | None:
    """A1111's name of DreamLayer's scheduler (its name or its diffusers class, as a job's
    metadata says which ran), or None for one A1111 has no name for."""
    if not scheduler:
        return None
    for title, (name, _) in SAMPLERS.items():
        if scheduler == name:
            return title
    plain = {c: n for n, (c, extra) in SCHEDULER_CLASSES.items() if not extra}
    return sampler_title(plain.get(scheduler))


def model_title(model: LibraryModel) -> str:
    """A1111's checkpoint title: the file name and the short hash in brackets."""
    return f"{model.name} [{model.sha256[:10]}]" if model.sha256 else model.name


def sd_model(model: LibraryModel) -> dict[str, Any]:
    """One entry of ``GET /sdapi/v1/sd-models`` (no server path: the name is the file)."""
    return {
        "title": model_title(model),
        "model_name": model.name.rsplit(".", 1)[0] if model.name.endswith(".safetensors")
        else model.name,
        "hash": model.sha256[:10] or None,
        "sha256": model.sha256 or None,
        "filename": model.name,
        "config": None,
    }  # fmt: skip


#: How A1111's model lists title a fill engine (classical, LaMa) when no diffusion model runs:
#: not a checkpoint, and it does not follow a prompt.
FILL_ENGINE_SUFFIX = " (fill engine: no prompt)"


def fill_engine_model(engine: str) -> dict[str, Any]:
    """The one entry of ``GET /sdapi/v1/sd-models`` with no diffusion model: the fill engine
    that runs, marked as one."""
    return {"title": engine + FILL_ENGINE_SUFFIX, "model_name": engine, "hash": None,
            "sha256": None, "filename": engine, "config": None}  # fmt: skip


def deployment_model(name: str) -> dict[str, Any]:
    """The one entry of ``GET /sdapi/v1/sd-models`` with an empty library: the deployment's
    own SD_INPAINT_MODEL."""
    return {"title": name, "model_name": name, "hash": None, "sha256": None,
            "filename": name, "config": None}  # fmt: skip


#: The upscalers A1111's clients may name, and the resampler each runs here ("None" is A1111's
#: plain resize: Lanczos). No super-resolution model yet (docs/adr/0009).
UPSCALER_METHODS = {"None": "lanczos", "Lanczos": "lanczos", "Nearest": "nearest"}
UPSCALERS = tuple(UPSCALER_METHODS)


def upscaler_method(name: str) -> str | None:
    """The resampler of an upscaler a client names (in any case; blank is "None"), or None
    for a name that is not here."""
    wanted = name.strip().lower() or "none"
    return next((m for n, m in UPSCALER_METHODS.items() if n.lower() == wanted), None)


#: ControlNet modules (preprocessors) that run here: the inpaint conditioning reads the input.
CONTROLNET_MODULES = ("none", "inpaint_only", "inpaint_global_harmonious")
#: The ControlNet extension's API version clients check for.
CONTROLNET_API_VERSION = 2


#: spandrel's names of the Real-ESRGAN family's architectures (RRDBNet: ESRGAN and
#: Real-ESRGAN x4plus; SRVGGNetCompact: realesr-general, the anime video models).
REAL_ESRGAN_ARCHITECTURES = frozenset({"ESRGAN", "RealESRGAN", "Compact", "RealCUGAN"})


def realesrgan_models(models: list[LibraryModel]) -> list[dict[str, Any]]:
    """``GET /sdapi/v1/realesrgan-models``: the library's upscalers of the Real-ESRGAN family
    (its ``name``, ``path`` as the file's name: no machine path, ``scale``)."""
    return [
        {"name": Path(model.name).stem, "path": model.name, "scale": model.details.get("scale")}
        for model in models
        if model.details.get("architecture") in REAL_ESRGAN_ARCHITECTURES
    ]


def upscalers(models: list[LibraryModel]) -> list[dict[str, Any]]:
    """``GET /sdapi/v1/upscalers``: the resamplers (no model file), then the library's
    super-resolution models, named by their file's name without the suffix (the file's name
    where A1111 gives its path: no machine path)."""
    resamplers = [
        {"name": name, "model_name": None, "model_path": None, "model_url": None,
         "scale": 4 if name != "None" else 1}
        for name in UPSCALERS
    ]  # fmt: skip
    return resamplers + [
        {
            "name": Path(model.name).stem,
            "model_name": model.details.get("architecture"),
            "model_path": model.name,
            "model_url": None,
            "scale": model.details.get("scale"),
        }
        for model in models
    ]


def lora(model: LibraryModel) -> dict[str, Any]:
    """One entry of ``GET /sdapi/v1/loras``: the name a prompt's ``<lora:name:w>`` tag uses,
    and the file's name where A1111 gives its path (no machine path)."""
    name = model.name.removesuffix(".safetensors")
    return {"name": name, "alias": name, "path": model.name, "metadata": {}}


def controlnet_models(models: list[LibraryModel]) -> dict[str, list[str]]:
    """``GET /controlnet/model_list``: the library's ControlNets, titled as A1111 titles them."""
    return {"model_list": [model_title(model) for model in models]}


def controlnet_modules() -> dict[str, Any]:
    """``GET /controlnet/module_list``: the modules that run here (others are ignored, and
    an img2img answer says so)."""
    return {"module_list": list(CONTROLNET_MODULES), "module_detail": {}}


def queue_status(waiting: int) -> dict[str, Any]:
    """``GET /queue/status`` (Gradio's queue, which clients poll as a health check): the
    caller's own jobs waiting or running."""
    return {"msg": "estimation", "queue_size": waiting, "queue_eta": 0}


#: A1111's defaults of the options clients read that DreamLayer keeps without acting on (A1111's
#: own API test reads ``send_seed`` before it writes it); what a user wrote replaces them.
OPTION_DEFAULTS: dict[str, Any] = {"send_seed": True, "send_size": True}


def options(
    default: LibraryModel | None,
    only_model: str | None,
    preview_every: int,
    kept: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``GET /sdapi/v1/options``: the settings A1111 clients read, as they are here
    (``only_model``: the title of the one entry ``sd-models`` lists with no library model),
    and the other options this user wrote (``kept``, over A1111's OPTION_DEFAULTS), read back
    as written but not acted on: ``dreamlayer_not_acted_on`` names them."""
    here = {
        "sd_model_checkpoint": model_title(default) if default else only_model,
        "sd_checkpoint_hash": (default.sha256 or None) if default else None,
        "CLIP_stop_at_last_layers": GenerationParams().clip_skip,
        "samples_format": "png",
        "return_grid": False,
        "live_previews_enable": preview_every > 0,
        "show_progress_every_n_steps": preview_every,
        "img2img_color_correction": False,
        "inpainting_mask_weight": 1.0,
        "initial_noise_multiplier": 1.0,
        "sd_vae": "Automatic",
    }
    kept = {k: v for k, v in {**OPTION_DEFAULTS, **(kept or {})}.items() if k not in here}
    return {**kept, **here, "dreamlayer_not_acted_on": sorted(kept)}


#: DreamLayer's parameter names as an A1111 request names them (``info.ignored``).
A1111_FIELD = {
    "num_inference_steps": "steps",
    "guidance_scale": "cfg_scale",
    "scheduler": "sampler_name",
    "soft": "Soft Inpainting",
    "clip_skip": "CLIP_stop_at_last_layers",
}


def info(
    generation: Generation,
    *,
    pictures: list | None = None,
    sampler: str | None,
    schedule: str,
    batch_size: int,
    n_iter: int,
    texts: list[str],
    model_hash: str | None,
    ignored: list[str],
    notes: list[dict[str, str]] = (),
    interrupted: bool = False,
) -> dict[str, Any]:
    """A1111's ``info`` (a JSON string in the answer), every key A1111 always sends with its
    type (``Processed.js``: strings never null, ``sd_vae_name`` / ``sd_vae_hash`` null as with
    no VAE chosen), finished or interrupted: seeds, sampler, sizes, the infotext of each image;
    ``ignored`` names what the request asked for that does not run here, and each field the
    engine that ran did not follow (the job's ``warnings``), by A1111's names; ``notes``: the
    request's own warnings (a sampler or schedule that fell back); ``interrupted``: the job
    was interrupted, the images are those finished before it. ``pictures``: the images of
    every job of the request, in order (a request of several iterations); by default the
    job's own."""
    warnings = (generation.metadata or {}).get("warnings", [])
    ignored = ignored + [
        name
        for name in dict.fromkeys(A1111_FIELD.get(w["field"], w["field"]) for w in warnings)
        if name not in ignored
    ]
    params = GenerationParams.from_json(generation.params)
    pictures = list(generation.images.all()) if pictures is None else pictures
    seeds = [image.seed for image in pictures]
    first = next(iter(pictures), None)
    # Interrupted before any image: the size and seed asked for (A1111 answers them too).
    asked = params.resize or {}
    width = first.width if first else asked.get("width", generation.source.width)
    height = first.height if first else asked.get("height", generation.source.height)
    seed = generation.seed if generation.seed is not None else params.seed
    count = len(seeds) or params.samples
    ran = sampler or sampler_title((generation.metadata or {}).get("scheduler"))
    return {
        "prompt": params.prompt,
        "all_prompts": [params.prompt] * count,
        "negative_prompt": params.negative_prompt,
        "all_negative_prompts": [params.negative_prompt] * count,
        "seed": -1 if seed is None else seed,
        "all_seeds": seeds,
        "subseed": -1,
        "all_subseeds": [-1] * len(seeds),
        "subseed_strength": 0.0,
        "width": width,
        "height": height,
        "sampler_name": ran or "",
        "scheduler": schedule,
        "cfg_scale": float(params.guidance_scale or 0.0),
        "steps": params.num_inference_steps or 0,
        "batch_size": batch_size,
        "n_iter": n_iter,
        "restore_faces": False,
        "face_restoration_model": None,
        "sd_model_name": generation.model_name or generation.engine,
        "sd_model_hash": model_hash or "",
        "sd_vae_name": None,
        "sd_vae_hash": None,
        "seed_resize_from_w": -1,
        "seed_resize_from_h": -1,
        "denoising_strength": params.denoising_strength,
        "clip_skip": params.clip_skip,
        "extra_generation_params": {
            "Mask blur": params.mask_blur,
            "Inpaint area": "Only masked" if params.inpaint_area == "masked" else "Whole picture",
            "Masked area padding": params.padding,
            "Masked content": params.masked_content,
            "Engine": generation.engine,
        },
        "index_of_first_image": 0,
        "infotexts": texts,
        "styles": [],
        "job_timestamp": generation.created_at.strftime("%Y%m%d%H%M%S"),
        "version": VERSION,
        "is_using_inpainting_conditioning": runs_a_model(generation.engine),
        "dreamlayer_id": str(generation.pk),
        "ignored": ignored,
        "warnings": [*notes, *warnings],
        **({"interrupted": INTERRUPTED} if interrupted else {}),
    }


INTERRUPTED = "Interrupted: the images are those finished before the interrupt (maybe none)."


def infotext(text: str, generation: Generation) -> str:
    """An image's infotext (its ``parameters`` text, which A1111's clients show) with what the
    engine that ran did not follow, where a client that shows no ``warnings`` still sees it:
    a fill engine's strength unused means the whole masked area was refilled."""
    notes = [w["message"] for w in (generation.metadata or {}).get("warnings", [])]
    return text + "".join(f"\nNote: {note}" for note in notes)


def img2img_body(images: list[bytes], parameters: dict[str, Any], info: dict) -> dict:
    return {
        "images": [base64.b64encode(png).decode() for png in images],
        "parameters": parameters,
        "info": json.dumps(info),
    }


def progress(
    generation: Generation | None,
    *,
    job_count: int,
    eta: float | None,
    current_image: bytes | None,
) -> dict[str, Any]:
    """``GET /sdapi/v1/progress`` for the caller's current job (None: nothing to report)."""
    if generation is None:
        state = {"job": "", "job_timestamp": "0", "job_no": 0, "sampling_step": 0,
                 "sampling_steps": 0}  # fmt: skip
        fraction, textinfo = 0.0, None
    else:
        running = generation.status == Generation.Status.RUNNING
        total = generation.total_steps if running else 0
        fraction = generation.step / total if total else 0.0
        # One of a request's iterations (``n_iter``, a job each): the request's share done.
        sequence = (generation.metadata or {}).get("sequence") or {"index": 0, "length": 1}
        fraction = (sequence["index"] + fraction) / sequence["length"]
        state = {
            "job": str(generation.pk),
            "job_timestamp": generation.created_at.strftime("%Y%m%d%H%M%S"),
            "job_no": sequence["index"],
            "sampling_step": generation.step if running else 0,
            "sampling_steps": total,
        }
        textinfo = "Running" if running else "Queued"
    return {
        "progress": round(fraction, 4),
        "eta_relative": eta or 0.0,
        "state": {
            "skipped": False,
            "interrupted": False,
            "stopping_generation": False,
            "job_count": job_count,
            **state,
        },
        "current_image": base64.b64encode(current_image).decode() if current_image else None,
        "textinfo": textinfo,
        "current_task": str(generation.pk) if generation else None,
    }


#: A PNG text chunk's keyword is 1 to 79 characters (the PNG specification).
PNG_KEYWORD_MAX = 79


def png_info(texts: dict[str, str]) -> dict[str, Any]:
    """``POST /sdapi/v1/png-info``: the ``parameters`` text, the other text chunks, and the
    parameters parsed as A1111 parses them. The answer is bounded whatever the image holds:
    ``info`` at most MAX_INFOTEXT characters, ``items`` (keywords of at most 79 characters)
    at most MAX_INFOTEXT characters in all, each value cut where that budget ends."""
    text = texts.get("parameters", "")[:MAX_INFOTEXT]
    items, budget = {}, MAX_INFOTEXT
    for key, value in texts.items():
        if key == "parameters" or len(key) > PNG_KEYWORD_MAX or budget <= len(key):
            continue
        budget -= len(key)
        items[key] = value[:budget]
        budget -= len(items[key])
    parsed = parse_a1111_parameters(text) if text else {}
    return {"info": text, "items": items, "parameters": parsed}


def error_body(status: int, message: str, errors: dict[str, list[str]]) -> dict[str, Any]:
    """A1111's error body (its API's exception handler): ``detail`` is what FastAPI clients
    read; ``errors`` holds the fields at fault."""
    try:
        kind = http.HTTPStatus(status).phrase.replace(" ", "")
    except ValueError:
        kind = "Error"
    return {"error": kind, "detail": message, "body": "", "errors": errors}


#: Bytes of a picture base64-encoded per piece of a streamed answer (a multiple of 3, so the
#: pieces join into one base64 string).
STREAM_PIECE = 3 * 64 * 1024


class ExtrasAnswer:
    """The extras answer, ``{"html_info", "image"}`` (``single``) or ``{"html_info",
    "images": [...]}``, with each picture as base64, written piece by piece from the PNG bytes
    (an async iterator for a streamed answer): the web process never holds the base64 text of
    a picture (a third larger than the PNG) nor the answer whole. ``length`` is its size in
    bytes. ``close()`` (Django calls it once the answer is sent, and when its client went away
    mid-answer) drops the pictures and calls ``done`` at once, not when a garbage collection
    finds the iterator."""

    def __init__(self, html_info: str, pictures: list[bytes], *, single: bool, done=None):
        head = json.dumps({"html_info": html_info})[:-1].encode()
        parts: list[bytes | memoryview] = [head]
        for index, png in enumerate(pictures):
            if single:
                parts.append(b', "image": "')
            else:
                parts.append(b', "images": ["' if index == 0 else b'", "')
            parts.append(memoryview(png))
        if not pictures and not single:
            parts.append(b', "images": [')
        parts.append(b'"}' if single else (b'"]}' if pictures else b"]}"))
        self.length = sum(
            4 * math.ceil(len(part) / 3) if isinstance(part, memoryview) else len(part)
            for part in parts
        )
        self._parts = parts
        self._at = (0, 0)  # the part, and the offset in it
        self._done = done

    def __aiter__(self) -> ExtrasAnswer:
        return self

    async def __anext__(self) -> bytes:
        index, offset = self._at
        if index >= len(self._parts):
            self.close()
            raise StopAsyncIteration
        part = self._parts[index]
        if not isinstance(part, memoryview):
            self._at = (index + 1, 0)
            return bytes(part)
        piece = part[offset : offset + STREAM_PIECE]
        end = offset + STREAM_PIECE >= len(part)
        self._at = (index + 1, 0) if end else (index, offset + STREAM_PIECE)
        return base64.b64encode(piece)

    def close(self) -> None:
        self._parts, self._at = [], (0, 0)
        done, self._done = self._done, None
        if done is not None:
            done()
