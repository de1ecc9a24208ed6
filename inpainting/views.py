"""Server-rendered pages: the studio, the history and its detail page; and the Prometheus
metrics."""

import functools
import hmac

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import (
    Http404,
    HttpResponse,
    HttpResponseNotFound,
    HttpResponseServerError,
    JsonResponse,
)
from django.shortcuts import redirect, render
from django.template import loader
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from . import scheduler, selectors
from .api.errors import json_not_found, json_server_error, wants_json
from .conf import engine_config, model_status
from .engine import selection, splitting
from .engine.compose import REGENERATED_OPACITY, REGENERATED_TINT
from .engine.layers import MAX_LAYERS
from .engine.parameters import (
    CONTROLNET_SCALE_RANGE,
    FILL_ENGINE_UNUSED,
    FILL_ENGINES,
    LORA_WEIGHT_RANGE,
    MAX_LORAS,
    MAX_OUTPAINT_SIDE,
    PARAMETERS,
    number,
)
from .engine.schedulers import scheduler_names
from .engine.upscale import DEFAULT_FACTOR
from .errors import ClientError
from .gate import GateFull
from .metrics import metrics_text
from .models import Generation
from .params import GenerationParams
from .prefixes import API_PATHS
from .services import (
    additions,
    generations,
    installs,
    layer_models,
    library,
    mask_models,
    masks,
    pictures,
    upscale,
    upscalers,
    usage,
)


def home(request):
    """``/``: the studio for a browser; for an API client (one that sends credentials, or
    asks for JSON rather than HTML: SDAI checks that the server answers here) a JSON answer
    that says the server is up and where its APIs are."""
    accept = request.headers.get("Accept", "")
    api_client = "HTTP_AUTHORIZATION" in request.META or (
        "application/json" in accept and "text/html" not in accept
    )
    if api_client:
        return JsonResponse(
            {"status": "ok", "name": "DreamLayer", "api": "/api/", "docs": "/api/docs/"}
        )
    return studio(request)


@login_required
def studio(request):
    config = engine_config()
    user = request.user  # its lists: what the user's groups give them (selectors.access_of)
    models = [m for m in library.library_models_described(user=user) if m["runnable"]]
    context = {
        "engines": config.available(),
        "default_engine": config.default(),
        "model": config.model_name(config.default()),
        # No diffusion model here: the engine that runs instead (the page says a prompt is
        # not followed).
        "fill_engine": config.fill_engine(),
        # ...and whether the deployment keeps diffusion off whatever is installed (staff read
        # it in that notice).
        "diffusion_off": settings.LOAD_SD_INPAINT is False,
        "fill_engines": FILL_ENGINES,  # the engines that take no model and follow no prompt
        "fill_engine_unused": FILL_ENGINE_UNUSED,  # the fields they ignore
        "max_upload_bytes": settings.UPLOAD_MAX_BYTES,
        "max_layers": MAX_LAYERS,  # a job's layers (the layers panel's Add stops there)
        # The size rule every upload meets (uploads.check_dimensions reads the same settings):
        # the page refuses a larger picture when it is loaded, not at Generate.
        "max_pixels": settings.UPLOAD_MAX_PIXELS,
        "max_side": settings.UPLOAD_MAX_SIDE,
        # Its jobs' lane: the page's token, for this log-in.
        "studio_token": generations.studio_token(request.user, request.session.session_key),
        "lama": selectors.lama_install_state(),  # the remover's line: LaMa missing or coming
        "may_install": installs.may_install(request.user),  # ...and a link to install it
        "schedulers": scheduler_names(),
        "model_status": model_status(),
        "params": PARAMETERS,  # the form's limits and defaults, from the one definition
        "outpaint_max": MAX_OUTPAINT_SIDE,
        # The model picker: the library's runnable models, the default first, each with what
        # it accepts; the form's steps and guidance start at the default model's.
        "models": models,
        # Select object: the methods the installed mask models run (sam, text, background).
        "select_text_max": selection.MAX_TEXT,
        "mask_methods": {
            method for m in mask_models.library_mask_models_described() for method in m["methods"]
        },
        "accepts": models[0]["accepts"] if models else library.library_default_accepts(),
        # The LoRA picker: the library's LoRAs, with the limits of the one definition.
        "loras": additions.library_loras_described(user),
        "max_loras": MAX_LORAS,
        "lora_weights": [number(w) for w in LORA_WEIGHT_RANGE],
        "controlnets": additions.library_controlnets_described(user),
        "ip_adapters": additions.library_ip_adapters_described(user),
        # "Upscale" on a result: the resamplers, then the library's super-resolution models.
        "upscalers": upscalers.library_upscalers_described(user),
        # "Split into layers" in the layers panel: shown where a layer model is installed, its
        # count from 2 to a job's most layers, its steps and sizes the split's own.
        "layer_models": layer_models.library_layer_models_described(),
        "split": {
            "min_layers": splitting.MIN_SPLIT_LAYERS,
            "layers": splitting.SplitRequest.layers,
            "steps": splitting.SplitRequest.num_inference_steps,
            "resolutions": splitting.RESOLUTIONS,
        },
        "controlnet_scales": [number(s) for s in CONTROLNET_SCALE_RANGE],
        # The overlay's red: the same colour as every other picture of the regenerated area.
        "tint": ",".join(str(c) for c in REGENERATED_TINT),
        "tint_opacity": REGENERATED_OPACITY,
    }
    return render(request, "inpainting/studio.html", context)


@login_required
def usage_page(request):
    """What the user has run and may run (``services.usage``: as ``GET /api/usage``)."""
    summary = usage.usage_summary(request.user)
    rows = []
    for period, figures in summary["usage"].items():
        limit = summary["limits"].get(period)
        words = ""
        if limit is not None:  # the windows a quota may hold
            parts = [
                f"{limit[key]} {what}"
                for key, what in (("jobs", "jobs"), ("gpu_seconds", "GPU-seconds"))
                if limit[key] is not None
            ]
            words = f"{', '.join(parts)} ({limit['source']})" if parts else "none"
        rows.append({"period": period, **figures, "limit": words})
    return render(request, "inpainting/usage.html", {"usage": summary, "rows": rows})


@login_required
def history(request):
    page = Paginator(selectors.generation_list(user=request.user), 24).get_page(
        request.GET.get("page")
    )
    places = _places(page.object_list)
    tiles = [
        (generation, _tile_pictures(generation), places.get(generation.pk))
        for generation in page.object_list
    ]
    return render(request, "inpainting/history.html", {"page": page, "tiles": tiles})


def _places(generations) -> dict:
    """The queued jobs' places in line and ETAs, as their status events give them
    (``history.js`` words them, and keeps them live): one reading of each queue they are in,
    however many of them the page shows."""
    places: dict = {}
    for generation in generations:
        if generation.status != Generation.Status.QUEUED or generation.pk in places:
            continue
        for job, position, eta in scheduler.generation_queue_places(
            generation=generation, limit=None
        ):
            places[job.pk] = {"queue_position": position, "eta_seconds": eta}
    return places


def _tile_pictures(generation: Generation) -> dict[str, dict[str, str] | None]:
    """A history tile's picture: its first output (the input while it has none, and the
    output's to show once it succeeds, ``history.js``), each as ``src`` (the 640 px thumbnail)
    and a ``srcset`` that gives a 1x screen the thumbnail at the size tiles are shown."""

    def sources(part: str) -> dict[str, str]:
        url = functools.partial(reverse, "api:generation-thumbnail")
        full = url(args=[generation.pk, part])
        small = url(args=[generation.pk, pictures.sized_thumbnail_part(part)])
        return {"src": full, "srcset": f"{small} 1x, {full} 2x"}

    first = next(iter(generation.images.all()), None)
    return {
        "shown": sources(str(first.index) if first else "input"),
        "output": None if first else sources("0"),
    }


def _own_generation(request, generation_id, change: bool = False) -> Generation:
    generation = selectors.generation_get(
        user=request.user, generation_id=generation_id, change=change
    )
    if generation is None:
        raise Http404("No such generation.")
    return generation


def _mask_colour(generation: Generation) -> str | None:
    """The colour of the job's mask that is regenerated, or None while the web process' gate
    is full (the page leaves it out rather than fail)."""
    try:
        return masks.generation_mask_colour(generation=generation)
    except GateFull:
        return None


@login_required
def history_detail(request, generation_id):
    """One generation; ``history-detail.js`` follows a queued or running one live."""
    generation = _own_generation(request, generation_id)
    context = {
        "g": generation,
        "params": selectors.generation_parameters(generation=generation),
        "images": generation.images.all(),
        "mask_colour": _mask_colour(generation),
        # A layered job's layers, bottom up, each with its mask's thumbnail.
        "layers": [
            {**layer, "position": position, "part": pictures.layer_part(position)}
            for position, layer in enumerate(
                GenerationParams.from_json(generation.params).layers or []
            )
        ],
        "active": generation.status in Generation.ACTIVE,
        # Only the owner upscales: the new job is theirs (staff may view others' jobs). A job
        # still running gets the form hidden: the page shows it when the job succeeds.
        "upscalers": (
            upscalers.library_upscalers_described(request.user)
            if generation.owner_id == request.user.pk
            and generation.status in ("succeeded", *Generation.ACTIVE)
            else []
        ),
    }
    return render(request, "inpainting/history_detail.html", context)


@login_required
@require_POST
def history_rerun(request, generation_id):
    generation = _own_generation(request, generation_id, change=True)
    return _new_job_page(
        request,
        generation,
        lambda: generations.generation_rerun(
            generation=generation, user=request.user, client=Generation.Client.WEB, interactive=True
        ),
    )


def _new_job_page(request, generation: Generation, make) -> HttpResponse:
    """The page of the job ``make()`` queues, or back to ``generation``'s with the reason it
    was refused."""
    try:
        new = make()
    except ClientError as exc:
        messages.error(request, exc.for_reader(staff=request.user.is_staff))
        return redirect("history-detail", generation_id=generation.pk)
    return redirect("history-detail", generation_id=new.pk)


@login_required
@require_POST
def history_upscale(request, generation_id):
    """An output of the job upscaled as a new job (the form on its page)."""
    generation = _own_generation(request, generation_id, change=True)
    try:
        index = int(request.POST.get("index", 0))
        factor = float(request.POST.get("factor", DEFAULT_FACTOR))
    except ValueError:
        messages.error(request, "The output and the factor must be numbers.")
        return redirect("history-detail", generation_id=generation.pk)
    return _new_job_page(
        request,
        generation,
        lambda: upscale.upscale_job_create(
            generations.Sender(request.user, client=Generation.Client.WEB, interactive=True),
            ask=upscale.UpscaleAsk(factor=factor),
            upscaler=request.POST.get("upscaler"),
            generation=generation,
            index=index,
        ),
    )


@login_required
@require_POST
def history_delete(request, generation_id):
    generations.generation_delete(generation=_own_generation(request, generation_id, change=True))
    messages.success(request, "The generation and its files are deleted.")
    return redirect("history")


def not_found(request, exception=None):
    """JSON under the APIs' prefixes and to an API client anywhere (``wants_json``), the
    project's page to a browser."""
    if request.path.startswith(API_PATHS) or wants_json(request):
        return json_not_found(request, exception)
    return HttpResponseNotFound(render(request, "404.html").content)


def server_error(request):
    """A crash: JSON under the APIs' prefixes, the project's page elsewhere; never the crash
    itself (it is logged)."""
    if request.path.startswith(API_PATHS):
        return json_server_error(request)
    return HttpResponseServerError(loader.get_template("500.html").render())


@require_GET
def metrics(request):
    """Prometheus metrics of the whole deployment (``inpainting.metrics``), for a scraper
    with METRICS_TOKEN as a Bearer token, or a staff login."""
    token = settings.METRICS_TOKEN
    sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    # Bytes: compare_digest refuses a str with characters outside ASCII (a 500 before).
    allowed = (token and sent and hmac.compare_digest(sent.encode(), token.encode())) or (
        request.user.is_authenticated and request.user.is_staff
    )
    if not allowed:
        status = 403 if request.user.is_authenticated or sent else 401
        return HttpResponse(
            "Metrics need METRICS_TOKEN as 'Authorization: Bearer <token>', or a staff login.\n",
            status=status,
            content_type="text/plain",
        )
    return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_LATEST)
