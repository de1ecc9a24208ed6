"""Upscaling: a picture without weights (Lanczos, nearest) where the request is answered
(AUTOMATIC1111's extras endpoints, docs/adr/0009), and upscale jobs (``POST /api/upscale``,
the studio, the history): a job in the history like a generation, run by a worker with a
resampler or a super-resolution model of the library, tile by tile with progress and cancel.
Every output size is checked against UPSCALE_MAX_PIXELS from the picture's header (or the
stored size), before any pixel is decoded."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from PIL import Image

from accounts.models import ApiKey, User

from .. import engine
from ..engine import superres, upscale
from ..errors import ClientError
from ..models import GeneratedImage, Generation
from ..params import GenerationParams
from ..progress import GenerationProgress
from ..uploads import IMAGE_FORMATS, decode_image, image_size, read_upload
from .files import open_stored, source_image_create
from .generations import files_removed_on_rollback, generation_insert, quota_check
from .library import library_upscaler_local_path, library_upscaler_named


@dataclass(frozen=True)
class UpscaleAsk:
    """What a request asks: a ``factor``, or a ``width`` and ``height`` (``crop``: cover that
    size and cut the middle out, as AUTOMATIC1111's "scale to" with crop), by ``method``."""

    factor: float | None = None
    width: int | None = None
    height: int | None = None
    crop: bool = True
    method: str = "lanczos"


def _plan(size: tuple[int, int], ask: UpscaleAsk, field: str) -> tuple[tuple[int, int], bool]:
    """The size to resample to, and whether the middle is then cut to the asked size."""
    if ask.width and ask.height and ask.crop:
        factor = max(ask.width / size[0], ask.height / size[1])
        return upscale.target_size(size, factor=factor, field=field), True
    if ask.width and ask.height:
        # A1111 without crop: the factor that covers the size, the aspect ratio kept.
        factor = max(ask.width / size[0], ask.height / size[1])
        return upscale.target_size(size, factor=factor, field=field), False
    if ask.width or ask.height:
        return upscale.target_size(size, width=ask.width, height=ask.height, field=field), False
    return upscale.target_size(size, factor=ask.factor, field=field), False


def upscale_middle(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The middle of ``image`` at ``size`` (a picture scaled to cover that size)."""
    left, top = (image.width - size[0]) // 2, (image.height - size[1]) // 2
    return image.crop((left, top, left + size[0], top + size[1]))


def upscale_pngs(pictures: list[bytes], ask: UpscaleAsk, *, field: str) -> list[bytes]:
    """Each picture upscaled as ``ask`` says, as PNG. Every size is read from its header and
    checked first (the upload limits, then UPSCALE_MAX_PIXELS for all the outputs together),
    before any picture is decoded; then one picture at a time."""
    try:
        sizes = [image_size(data, field=field, formats=IMAGE_FORMATS) for data in pictures]
        plans = [_plan(size, ask, field) for size in sizes]
        upscale.check_targets(
            [target for target, _ in plans], settings.UPSCALE_MAX_PIXELS, field=field
        )
        outputs = []
        for data, (target, crop) in zip(pictures, plans, strict=True):
            image = engine.to_rgb(decode_image(data, field=field, formats=IMAGE_FORMATS))
            out = upscale.upscale(image, target, method=ask.method)
            if crop:
                out = upscale_middle(out, (ask.width, ask.height))
            outputs.append(engine.encode_png(out))
    except engine.InvalidInput as exc:
        raise ClientError(str(exc), field=exc.field or field) from None
    return outputs


def _upscaler_checked(name: str | None) -> str:
    """The upscaler a job names, as the job records it: a resampler, or an enabled upscaler of
    the library (``GET /api/upscalers``); a 400 otherwise."""
    name = (name or "lanczos").strip()
    if name.lower() in upscale.RESAMPLERS:
        return name.lower()
    model = library_upscaler_named(name)  # its file's name, with or without the suffix
    if model is not None:
        return model.name
    raise ClientError(
        f"No upscaler called {name!r}: GET /api/upscalers lists them (lanczos and nearest need "
        "no weights; a super-resolution model goes into UPSCALERS_DIR).",
        field="upscaler",
    )


def upscale_target(size: tuple[int, int], ask: UpscaleAsk) -> tuple[tuple[int, int], bool]:
    """The size a picture of ``size`` is upscaled to, and whether its middle is then cut out
    at ``ask``'s width and height: ``ask``'s factor; or its width or height alone (the aspect
    ratio kept); or both (the picture covers them, and the middle is cut out, as
    AUTOMATIC1111's "scale to" does; without ``crop`` the covering size is the output). Within
    UPSCALE_MAX_PIXELS, or a 400 on the field that asked for it."""
    field = "width" if ask.width or ask.height else "factor"
    try:
        target, crop = _plan(size, ask, field)
        upscale.check_targets([target], settings.UPSCALE_MAX_PIXELS, field=field)
    except engine.InvalidInput as exc:
        raise ClientError(str(exc), field=exc.field or field) from None
    return target, crop


def upscale_image(
    image: Image.Image,
    size: tuple[int, int],
    upscaler: str,
    *,
    model_path: Path | None = None,
    on_tile=None,
    cancelled=None,
) -> tuple[Image.Image, dict]:
    """``image`` at ``size`` by ``upscaler`` (a resampler, or the upscaler of this machine's
    UPSCALERS_DIR by that name, or the file ``model_path``), with what ran for the metadata.
    A model reports each tile (``on_tile(done, total)``) and stops between tiles once
    ``cancelled()``; a resampler is one step."""
    if upscaler in upscale.RESAMPLERS and model_path is None:
        if on_tile is not None:
            on_tile(0, 1)
        result = upscale.upscale(image, size, method=upscaler)
        if on_tile is not None:
            on_tile(1, 1)
        return result, {"upscaler": upscaler}
    path = model_path or library_upscaler_local_path(upscaler)
    if path is None:
        raise engine.EngineError(
            f"The upscaler {upscaler} is not in this machine's UPSCALERS_DIR "
            f"({settings.UPSCALERS_DIR})."
        )
    model = superres.load_cached(path)
    result = upscale.upscale(
        image, size, model=model, scale=model.scale, on_tile=on_tile, cancelled=cancelled
    )
    return result, {
        "upscaler": upscaler,
        "architecture": model.architecture.name,
        "scale": model.scale,
    }


def upscale_job_create(
    *,
    user: User,
    ask: UpscaleAsk,
    upscaler: str | None = None,
    image_file=None,
    output: GeneratedImage | None = None,
    client: str = Generation.Client.API,
    api_key: ApiKey | None = None,
) -> Generation:
    """Queue an upscale job of an uploaded picture (``image_file``) or of a job's ``output``,
    by ``upscaler`` (default lanczos), to the size ``ask`` says (``upscale_target``). The
    output size is planned and checked against UPSCALE_MAX_PIXELS from the header or the
    stored size, before any pixel is decoded; nothing is stored for a request refused."""
    name = _upscaler_checked(upscaler)
    if (image_file is None) == (output is None):
        raise ClientError("Send an image file or name a generation's output.", field="image")
    data = None
    if output is not None:
        size = (output.width, output.height)
    else:
        data = read_upload(image_file, field="image")
        size = image_size(data, field="image", formats=IMAGE_FORMATS)
    target, crop = upscale_target(size, ask)
    if output is not None:
        image = open_stored(output.file)
    else:
        image = decode_image(data, field="image", formats=IMAGE_FORMATS)
    width, height = (ask.width, ask.height) if crop else target
    job = {"width": width, "height": height, "factor": ask.factor, "upscaler": name}
    if crop:  # upscaled to cover the size asked for, then its middle cut out
        job["cover"] = list(target)
    if output is not None:
        job["of"] = {"generation": str(output.generation_id), "index": output.index}
    with files_removed_on_rollback() as saved, transaction.atomic():
        quota_check(user)
        source = source_image_create(owner=user, image=image)
        saved.append(source.file)
        return generation_insert(
            user=user,
            source=source,
            mask=None,
            params=GenerationParams(upscale=job),
            engine_name=upscale.ENGINE,
            model_name=name,
            client=client,
            api_key=api_key,
            idempotency_key=None,
        )


def upscale_job_run(generation: Generation, progress: GenerationProgress) -> engine.InpaintResult:
    """Run an upscale job (a worker): a resampler in one step, or the library's model over
    tiles, a step per tile (``progress``), stopping between tiles once cancelled."""
    job = GenerationParams.from_json(generation.params).upscale or {}
    name, size = generation.model_name, (job["width"], job["height"])
    image = engine.to_rgb(open_stored(generation.source.file))
    started = time.monotonic()
    result, metadata = upscale_image(
        image,
        tuple(job.get("cover") or size),
        name,
        on_tile=lambda done, total: progress(engine.ProgressEvent(done, total)),
        cancelled=progress.is_cancelled,
    )
    if result.size != size:
        result = upscale_middle(result, size)
    return engine.InpaintResult(
        images=[result],
        seeds=[0],
        engine=upscale.ENGINE,
        model=name,
        width=result.width,
        height=result.height,
        inference_seconds=time.monotonic() - started,
        metadata=metadata,
    )
