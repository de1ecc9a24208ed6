"""The native JSON shapes of a generation: the API views, the websocket consumers and the
native webhooks share them."""

from __future__ import annotations

from typing import Any

from django.core import signing
from django.urls import reverse

from ..engine.engines import runs_a_model
from ..models import GeneratedImage, Generation
from ..params import GenerationParams
from ..scheduler import generation_eta_seconds, generation_queue_place


def _absolute(base_url: str, path: str) -> str:
    return base_url.rstrip("/") + path


def image_urls(generation: Generation, base_url: str) -> list[str]:
    return [
        _absolute(base_url, reverse("api:generation-image", args=[generation.pk, image.index]))
        for image in generation.images.all()
    ]


#: What an image link is signed for (``services.links`` reads them).
IMAGE_LINK_SALT = "dreamlayer.image-link"


def image_link_token(image: GeneratedImage, output_format: str = "png", quality: int = 100) -> str:
    """A link to one output that works with no key for ``IMAGE_LINK_SECONDS``: signed with
    the server's secret, naming the image and the format to send it in."""
    return signing.dumps(
        {"image": str(image.pk), "format": output_format, "quality": quality},
        salt=IMAGE_LINK_SALT,
    )


def image_links(generation: Generation, base_url: str) -> list[str]:
    """Signed links to the outputs as stored (PNG), for the clients of services whose output
    links need no key (ModelsLab, FooocusAPI, deep-image.ai): ``services.links``."""
    return [
        _absolute(base_url, reverse("api:image-link", args=[image_link_token(image)]))
        for image in generation.images.all()
    ]


def warnings(generation: Generation, names: dict[str, str] | None = None) -> list[dict[str, str]]:
    """Each request field the engine that ran did not follow (``metadata.warnings``: a fill
    engine and a prompt, a model and a field its family ignores), ``{field, message}``, the
    field by the client's own name where ``names`` maps it."""
    names = names or {}
    return [
        {**w, "field": names.get(w["field"], w["field"])}
        for w in (generation.metadata or {}).get("warnings", [])
    ]


def _upscale_metadata(generation: Generation, params: GenerationParams) -> dict[str, Any]:
    """An upscale job's metadata: what it made and from what, and what ran (no seed, no
    prompt: it has neither)."""
    return {
        "engine": generation.engine,
        "model": generation.model_name,
        "upscale": params.upscale,
        "width": params.upscale["width"],
        "height": params.upscale["height"],
        "input_width": generation.source.width,
        "input_height": generation.source.height,
        "timings": {
            "queue": generation.queue_seconds,
            "inference": generation.inference_seconds,
            "total": generation.total_seconds,
        },
        **(generation.metadata or {}),
    }


def _split_metadata(generation: Generation, params: GenerationParams) -> dict[str, Any]:
    """A split job's metadata: what it asked, the layers it made and what ran."""
    return {
        "engine": generation.engine,
        "model": generation.model_name,
        "split": params.split,
        "prompt": params.prompt,
        "seed": generation.seed,
        "num_inference_steps": params.num_inference_steps,
        "width": generation.source.width,
        "height": generation.source.height,
        "timings": {
            "queue": generation.queue_seconds,
            "inference": generation.inference_seconds,
            "total": generation.total_seconds,
        },
        **(generation.metadata or {}),
    }


def metadata(generation: Generation) -> dict[str, Any]:
    """What the job ran with: every field of the request, as sent or as defaulted, whatever
    engine ran (the seed document's client reads ``denoising_strength`` back). What the
    engine did not follow is said in ``warnings`` (``services.generations``), never by leaving
    a field out: an answer's shape is the same for every engine."""
    params = GenerationParams.from_json(generation.params)
    if generation.is_upscale:
        return _upscale_metadata(generation, params)
    if generation.is_split:
        return _split_metadata(generation, params)
    diffusers = runs_a_model(generation.engine)
    first = next(iter(generation.images.all()), None)
    width, height = (
        (first.width, first.height)
        if first
        else (generation.source.width, generation.source.height)
    )
    data: dict[str, Any] = {
        "prompt": params.prompt,
        "negative_prompt": params.negative_prompt,
        "denoising_strength": params.denoising_strength,
        "seed": generation.seed,
        "seeds": [image.seed for image in generation.images.all()],
        "num_inference_steps": params.num_inference_steps,
        "guidance_scale": params.guidance_scale,
        "clip_skip": params.clip_skip,
        "scheduler": params.scheduler,  # a diffusion model's metadata says which one ran
        # What a diffusion model applied (the other engines ignore them).
        "loras": [{"name": n, "weight": w} for n, w in params.lora_uses] if diffusers else [],
        "controlnet": params.controlnet if diffusers else None,
        "samples": params.samples,
        "engine": generation.engine,
        "model": generation.model_name,
        "width": width,
        "height": height,
        "input_width": generation.source.width,
        "input_height": generation.source.height,
        "mask_mode": params.mask_mode,
        "invert_mask": params.invert_mask,
        "mask_blur": params.mask_blur,
        "mask_grow": params.mask_grow,
        "inpaint_area": params.inpaint_area,
        "padding": params.padding,
        "outpaint": params.outpaint,
        # Bottom up, each with its prompt (``layered`` says how they ran); [] for a job of one
        # mask: every answer has the field.
        "layers": params.layers or [],
        "timings": {
            "queue": generation.queue_seconds,
            "inference": generation.inference_seconds,
            "total": generation.total_seconds,
        },
    }
    data.update(generation.metadata or {})
    return data


def websocket_url(generation: Generation, base_url: str) -> str:
    scheme, _, rest = base_url.partition("://")
    ws_scheme = "wss" if scheme == "https" else "ws"
    return f"{ws_scheme}://{rest.rstrip('/')}/ws/generations/{generation.pk}/"


def detail(generation: Generation, base_url: str) -> dict[str, Any]:
    def link(name: str) -> str:
        return _absolute(base_url, reverse(name, args=[generation.pk]))

    position, eta = generation_queue_place(generation=generation)
    return {
        "id": str(generation.pk),
        "status": generation.status,
        "client": generation.client,
        "owner": generation.owner.get_username(),
        "created_at": generation.created_at.isoformat(),
        "started_at": generation.started_at.isoformat() if generation.started_at else None,
        "finished_at": generation.finished_at.isoformat() if generation.finished_at else None,
        "progress": {
            "step": generation.step,
            "total": generation.total_steps,
            "percent": generation.percent,
        },
        "queue_position": position,
        "eta_seconds": eta,
        "attempts": generation.attempts,
        "error": generation.error or None,
        "images": image_urls(generation, base_url),
        "input_image": link("api:generation-input"),
        "mask_image": link("api:generation-mask") if generation.mask_id else None,
        "layer_masks": [
            _absolute(base_url, reverse("api:generation-layer", args=[generation.pk, position]))
            for position in range(len(GenerationParams.from_json(generation.params).layers or []))
        ],
        "regenerated_image": (
            None if generation.is_upscale else link("api:generation-regenerated")
        ),
        "metadata": metadata(generation),
        "websocket": websocket_url(generation, base_url),
        "webhook": {
            "url": generation.webhook_url,
            "status": generation.webhook_status,
            "attempts": generation.webhook_attempts,
            "error": generation.webhook_error or None,
        }
        if generation.webhook_url
        else None,
    }


def img2img_success(generation: Generation, base_url: str) -> dict[str, Any]:
    return {
        "status": "success",
        "id": str(generation.pk),
        "images": image_urls(generation, base_url),
        "metadata": metadata(generation),
    }


def img2img_processing(generation: Generation, base_url: str) -> dict[str, Any]:
    return {
        "status": "processing",
        "id": str(generation.pk),
        "eta": generation_eta_seconds(generation=generation),
        "fetch_result": _absolute(base_url, reverse("api:generation-detail", args=[generation.pk])),
        "websocket": websocket_url(generation, base_url),
    }
