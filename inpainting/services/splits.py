"""A picture split into transparent layers as a job (issue 80, ``engine.splitting``): queued
from an upload by ``POST /api/layers/split``, run by a worker with a layer model of the
library (a Qwen-Image-Layered folder in ``LAYER_MODELS_DIR``, found on the worker's own disk
by name, as upscalers are), its outputs the layers (RGBA PNGs, bottom up) in the history like
any job's. The layer count, the size and the quota are checked before any pixel is decoded."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from .. import engine, gate
from ..engine import splitting
from ..models import Generation
from ..params import GenerationParams
from ..progress import GenerationProgress
from ..uploads import IMAGE_FORMATS, decode_image, image_size, read_upload
from .files import open_stored
from .generations import Sender, picture_job_store
from .layer_models import library_layer_model_checked
from .plan import JobPlan


def split_job_create(
    sender: Sender,
    *,
    image_file,
    layers: int,
    prompt: str = "",
    model: str | None = None,
    seed: int | None = None,
    steps: int | None = None,
    resolution: int = splitting.RESOLUTIONS[0],
) -> Generation:
    """Queue a split of the uploaded picture into ``layers`` RGBA layers by a layer model of
    the library. What a split may ask, the picture's size (its header) and the quota are
    checked before any pixel is decoded; nothing is stored for a request that is refused. An
    ``idempotency_key`` replays the same request."""
    splitting.check_split(layers, resolution)
    chosen = library_layer_model_checked(model)
    data = read_upload(image_file, field="image")
    size = image_size(data, field="image", formats=IMAGE_FORMATS)
    params = GenerationParams(
        prompt=prompt,
        seed=seed,
        num_inference_steps=steps or splitting.SplitRequest.num_inference_steps,
        guidance_scale=splitting.SplitRequest.guidance_scale,
        split={"layers": layers, "resolution": resolution},
    )
    sender = sender.fingerprinted(params, (image_file,), extra={"model": chosen.name})
    # The picture decoded, its RGB copy and the stored PNG's encoder at once.
    return picture_job_store(
        sender,
        JobPlan(splitting.ENGINE, chosen.name),
        params,
        work=gate.JOB_UPLOADS,
        size=size,
        picture=lambda: decode_image(data, field="image", formats=IMAGE_FORMATS),
    )


def layer_model_local_path(name: str) -> Path:
    """Where the layer model ``name`` is on this machine (LAYER_MODELS_DIR, by name: in a
    cluster each worker has its own disk); an engine error when it is not here."""
    path = Path(settings.LAYER_MODELS_DIR) / name
    if not (path / "model_index.json").is_file():
        raise engine.EngineError(
            f"The layer model {name!r} is not on this worker (LAYER_MODELS_DIR)."
        )
    return path


def split_job_run(generation: Generation, progress: GenerationProgress) -> engine.InpaintResult:
    """Run a split job (a worker): the layers, a step at a time (``progress``), stopping
    between steps once cancelled."""
    from ..engine.backends.split import split_layers  # noqa: PLC0415 - torch: heavy

    params = GenerationParams.from_json(generation.params)
    job = params.split or {}
    image = open_stored(generation.source.file)
    request = splitting.SplitRequest(
        image,
        layers=job["layers"],
        prompt=params.prompt,
        num_inference_steps=params.num_inference_steps,
        guidance_scale=params.guidance_scale,
        seed=params.seed,
        resolution=job.get("resolution", splitting.RESOLUTIONS[0]),
    )
    split = split_layers(
        layer_model_local_path(generation.model_name),
        request,
        device=settings.INPAINT_DEVICE,
        progress=progress,
        is_cancelled=progress.is_cancelled,
    )
    return engine.InpaintResult(
        images=split.layers,
        seeds=[split.seed] * len(split.layers),
        engine=splitting.ENGINE,
        model=generation.model_name,
        width=image.width,
        height=image.height,
        inference_seconds=split.seconds,
        metadata={"layers_made": len(split.layers)},
    )
