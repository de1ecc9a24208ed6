"""Upscaling: a picture without weights (Lanczos, nearest) where the request is answered
(AUTOMATIC1111's extras endpoints, docs/adr/0009), and upscale jobs (``POST /api/upscale``,
the studio, the history, A1111's extras with a model): a job in the history like a
generation, run by a worker with a resampler or a super-resolution model of the library, tile
by tile with progress and cancel. Every output size is checked against UPSCALE_MAX_PIXELS from
the picture's header (or a job output's stored size) before any pixel is decoded, and a
model's own output is kept within it too (``engine.upscale.model_input``)."""

from __future__ import annotations

import functools
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from PIL import Image

from accounts.models import User

from .. import engine, gate
from ..engine import superres, upscale
from ..errors import ClientError
from ..gate import ANSWERS, PIXELS, AnswerHold, pixels_of
from ..models import Generation
from ..params import GenerationParams
from ..progress import GenerationProgress
from ..uploads import IMAGE_FORMATS, check_dimensions, decode_image, image_size, read_upload
from .files import open_stored
from .generations import OUTPUT_BYTES_PER_PIXEL, Sender, picture_job_store
from .plan import JobPlan
from .upscalers import library_upscaler_checked, library_upscaler_local_path


@dataclass(frozen=True)
class UpscaleAsk:
    """What a request asks: a ``factor``, or a ``width`` and / or ``height`` (both, with
    ``crop``: cover that size and cut the middle out, as AUTOMATIC1111's "scale to" with crop;
    without: the covering size), by ``method`` (a resampler, where the request is answered)."""

    factor: float | None = None
    width: int | None = None
    height: int | None = None
    crop: bool = True
    method: str = "lanczos"


@dataclass(frozen=True)
class Plan:
    """How a picture is upscaled: to ``resize``, then (``crop``) its middle at that size."""

    resize: tuple[int, int]
    crop: tuple[int, int] | None = None

    @property
    def size(self) -> tuple[int, int]:
        """The size of the picture it makes."""
        return self.crop or self.resize


def _plan(size: tuple[int, int], ask: UpscaleAsk, field: str) -> Plan:
    upscale.check_sides(ask.width, ask.height, field=field)  # before any arithmetic on them
    if ask.width and ask.height:
        factor = max(ask.width / size[0], ask.height / size[1])  # covers both
        resize = upscale.target_size(size, factor=factor, field=field)
        return Plan(resize, (ask.width, ask.height) if ask.crop else None)
    if ask.width or ask.height:
        return Plan(upscale.target_size(size, width=ask.width, height=ask.height, field=field))
    return Plan(upscale.target_size(size, factor=ask.factor, field=field))


def upscale_plans(
    sizes: list[tuple[int, int]], ask: UpscaleAsk, *, field: str | None = None
) -> list[Plan]:
    """How each picture of ``sizes`` is upscaled as ``ask`` says, all of them together
    within UPSCALE_MAX_PIXELS: a 400 on ``field`` otherwise (read from the sizes alone; by
    default the field that asked for the size: width, or factor)."""
    field = field or ("width" if ask.width or ask.height else "factor")
    plans = [_plan(size, ask, field) for size in sizes]
    upscale.check_targets([plan.resize for plan in plans], settings.UPSCALE_MAX_PIXELS, field=field)
    return plans


def upscale_image(
    image: Image.Image,
    plan: Plan,
    upscaler: str,
    *,
    model_path: Path | None = None,
    on_tile: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> tuple[Image.Image, dict]:
    """``image`` upscaled as ``plan`` says by ``upscaler`` (a resampler, or the upscaler of
    this machine's UPSCALERS_DIR by that name, or the file ``model_path``), with what ran for
    the metadata. A model reports each tile (``on_tile(done, total)``) and stops between tiles
    once ``cancelled()``; a resampler is one step."""
    report = on_tile or (lambda done, total: None)
    if upscaler in upscale.RESAMPLERS and model_path is None:
        report(0, 1)
        result = upscale.upscale(image, plan.resize, method=upscaler)
        report(1, 1)
        ran = {"upscaler": upscaler}
    else:
        path = model_path or library_upscaler_local_path(upscaler)
        if path is None:
            raise engine.EngineError(f"The upscaler {upscaler} is not on this worker's disk.")
        model = superres.load_cached(path)
        result = upscale.upscale(
            image,
            plan.resize,
            model=model,
            scale=model.scale,
            on_tile=on_tile,
            cancelled=cancelled,
            max_pixels=settings.UPSCALE_MAX_PIXELS,
        )
        ran = {"upscaler": upscaler, "architecture": model.architecture.name, "scale": model.scale}
    if plan.crop:
        left, top = (result.width - plan.crop[0]) // 2, (result.height - plan.crop[1]) // 2
        result = result.crop((left, top, left + plan.crop[0], top + plan.crop[1]))
    return result, ran


class WebUpscale:
    """Pictures upscaled where the request is answered, as PNG, and the bytes they hold
    against the answers' budget (``gate.ANSWERS``) until ``release()`` (once their answer is
    sent or closed: docs/adr/0011), or until they are dropped unsent: a client that went away
    while they were made cancels the request, and its answer is never iterated, so the hold
    goes with the object (``weakref.finalize``). The gate's pixel ticket is let go as soon as
    the PNGs exist: it covers pixel work, not bytes on their way out."""

    def __init__(self, hold: AnswerHold) -> None:
        self.pngs: list[bytes] = []
        self.hold = hold
        self._release = weakref.finalize(self, ANSWERS.release, hold)

    def release(self) -> None:
        self._release()  # once: a finalizer runs at most once
        self.pngs = []


def upscale_pngs(pictures: list[bytes], ask: UpscaleAsk, *, field: str, user: User) -> WebUpscale:
    """Each picture upscaled by ``ask``'s resampler, as PNG, through the web process' gate.
    Every size is read from its header and checked first (the upload limits, then
    UPSCALE_MAX_PIXELS for all the outputs together), and the answer's bytes reserved and the
    gate passed for all the pixels held at once, before any picture is decoded; then one
    picture at a time."""
    sizes = [image_size(data, field=field, formats=IMAGE_FORMATS) for data in pictures]
    plans = upscale_plans(sizes, ask, field=field)
    outputs = pixels_of(*(plan.size for plan in plans))
    answer = WebUpscale(
        ANSWERS.reserve(user=user.pk, nbytes=OUTPUT_BYTES_PER_PIXEL * outputs, what="upscale")
    )
    # The largest input decoded and its output, plus every output kept as PNG (at most as
    # many bytes as pixels of RGB: counted as pixels).
    held = max(
        (gate.RESAMPLED.pixels(size, plan.resize) for size, plan in zip(sizes, plans, strict=True)),
        default=0,
    )
    try:
        cost = held + gate.RESAMPLED.pixels(*(plan.size for plan in plans))
        with PIXELS.held(user=user.pk, pixels=cost, what=gate.RESAMPLED.what):
            for data, plan in zip(pictures, plans, strict=True):
                image = engine.to_rgb(decode_image(data, field=field, formats=IMAGE_FORMATS))
                upscaled = upscale_image(image, plan, ask.method)[0]
                del image
                answer.pngs.append(engine.encode_png(upscaled))
                del upscaled
    except BaseException:
        answer.release()
        raise
    ANSWERS.settle(answer.hold, sum(len(png) for png in answer.pngs))
    return answer


def upscale_output_answer(generation: Generation, *, user: User) -> WebUpscale:
    """A finished upscale job's output as an answer's PNG, its bytes held against the
    answers' budget like a resampler's (``WebUpscale``: let go once the answer is sent or
    closed, or when it is dropped unsent)."""
    output = generation.images.get()
    answer = WebUpscale(ANSWERS.reserve(user=user.pk, nbytes=output.file.size, what="upscale"))
    try:
        with output.file.open("rb") as handle:
            answer.pngs.append(handle.read())
    except BaseException:
        answer.release()
        raise
    return answer


def upscale_job_create(
    sender: Sender,
    *,
    ask: UpscaleAsk,
    upscaler: str | None = None,
    image_file=None,
    generation: Generation | None = None,
    index: int = 0,
) -> Generation:
    """Queue an upscale job of an uploaded picture (``image_file``) or of output ``index`` of
    the caller's ``generation``, by ``upscaler`` (default lanczos), as ``ask`` says. The
    sizes (the input's, from its header or its stored size; the output's, within
    UPSCALE_MAX_PIXELS) and the quota are checked before any pixel is decoded; nothing is
    stored for a request that is refused. An ``idempotency_key`` replays the same request."""
    name = library_upscaler_checked(upscaler, sender.user)
    if (image_file is None) == (generation is None):
        raise ClientError("Send an image file, or name one of your generations.", field="image")
    output = None
    if generation is not None:
        output = generation.images.filter(index=index).first()
        if output is None:
            raise ClientError(
                f"The generation {generation.pk} has no output {index} "
                f"(it has {generation.images.count()}).",
                field="index",
            )
        size = (output.width, output.height)
        check_dimensions(*size, field="generation")  # an input as any other
    else:
        data = read_upload(image_file, field="image")
        size = image_size(data, field="image", formats=IMAGE_FORMATS)
    (plan,) = upscale_plans([size], ask)
    width, height = plan.size
    job = {"width": width, "height": height, "factor": ask.factor, "upscaler": name}
    if plan.crop:  # upscaled to cover the size asked for, then its middle cut out
        job["cover"] = list(plan.resize)
    if output is not None:
        job["of"] = {"generation": str(output.generation_id), "index": output.index}
    params = GenerationParams(upscale=job)
    sender = sender.fingerprinted(params, (image_file,))
    if output is not None:
        picture = functools.partial(open_stored, output.file)
    else:
        picture = functools.partial(decode_image, data, field="image", formats=IMAGE_FORMATS)
    # The picture decoded, its RGB copy and the stored PNG's encoder at once.
    return picture_job_store(
        sender,
        JobPlan(upscale.ENGINE, name),
        params,
        work=gate.UPSCALE_UPLOAD,
        size=size,
        picture=picture,
    )


def upscale_job_run(generation: Generation, progress: GenerationProgress) -> engine.InpaintResult:
    """Run an upscale job (a worker): a resampler in one step, or the library's model over
    tiles, a step per tile (``progress``), stopping between tiles once cancelled."""
    job = GenerationParams.from_json(generation.params).upscale or {}
    size = (job["width"], job["height"])
    plan = Plan(tuple(job["cover"]), size) if job.get("cover") else Plan(size)
    image = engine.to_rgb(open_stored(generation.source.file))
    started = time.monotonic()
    result, ran = upscale_image(
        image,
        plan,
        generation.model_name,
        on_tile=lambda done, total: progress(engine.ProgressEvent(done, total)),
        cancelled=progress.is_cancelled,
    )
    return engine.InpaintResult(
        images=[result],
        seeds=[0],
        engine=upscale.ENGINE,
        model=generation.model_name,
        width=result.width,
        height=result.height,
        inference_seconds=time.monotonic() - started,
        metadata=ran,
    )
