"""The behaviour every backend shares, implemented once around them.

``prepare`` builds the canvas and the effective mask (outpainting extends and pre-fills
the canvas), picks the seeds, crops to the masked region when that is cheaper, brings the
region to the backend's working resolution, calls the backend, brings the results back and
composites them so that every pixel whose effective mask is 0 stays byte-identical.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
from PIL import Image

from .buckets import nearest
from .compose import composite_images, working_dimensions
from .images import resize_to, to_rgb
from .infill import LEAST_SHRINK, fill
from .masks import check_mask_size, effective_mask, feather
from .multiscale import refine
from .parameters import check
from .schedulers import canonical_name
from .types import (
    MASKED_CONTENT,
    MAX_SEED,
    BackendCall,
    BackendOutput,
    CancelCheck,
    Cancelled,
    InpaintRequest,
    InpaintResult,
    InvalidInput,
    MaskOptions,
    Outpaint,
    ProgressCallback,
    Resize,
)

#: The largest canvas outpainting may produce.
MAX_CANVAS_PIXELS = 2 * 4096 * 4096
#: ``inpaint_area=auto`` crops when the masked region is under this share of the canvas.
AUTO_CROP_SHARE = 0.5


class Backend(Protocol):
    name: str
    #: Long side the backend works at, or None to work at the input's own size.
    working_size: int | None
    #: The sizes an only-masked crop is brought to (``buckets``: the one nearest its aspect;
    #: a model's CUDA graphs are captured for them); empty: the working size's long side at
    #: the crop's own aspect.
    working_sizes: tuple[tuple[int, int], ...]
    #: With no ``working_size``: a region of more pixels than this, or whose hole has more than
    #: ``max_hole_pixels``, is shrunk until it has no more (a fill's cost grows with both);
    #: None: no limit.
    max_pixels: int | None
    max_hole_pixels: int | None
    #: The crop reaches at least this share of the hole's longer side beyond the hole's box
    #: (a fill copies from around the hole and needs context in proportion to it); 0: the
    #: request's ``padding`` alone.
    context_share: float
    #: Both working sides are multiples of this (8 for SD's latents, 16 for FLUX's patches).
    size_multiple: int
    #: Whether outpainting should pre-fill the new area before calling the backend.
    prefill: bool
    #: Whether ``inpaint_batch`` runs several calls of one ``batch_key`` as one model batch.
    supports_batch: bool
    #: Whether it starts from the picture under the hole (a diffusion model, from its latents):
    #: then ``masked_content`` chooses what is there first. A fill ignores those pixels.
    uses_masked_content: bool
    #: Whether it paints a layered job's regions in one call (``BackendCall.regions``), each
    #: with its prompt; otherwise ``layers.run_layered`` runs them one after another.
    regions_in_one_call: bool
    #: Whether it edits by an instruction: a request without a mask then changes the whole
    #: picture (``canvas_mask``).
    edits: bool

    def inpaint(
        self, call: BackendCall, progress: ProgressCallback, is_cancelled: CancelCheck
    ) -> BackendOutput: ...

    def inpaint_batch(
        self,
        calls: list[BackendCall],
        progresses: list[ProgressCallback],
        cancel_checks: list[CancelCheck],
    ) -> list[BackendOutput]: ...


def resolve_seeds(seed: int | None, samples: int) -> list[int]:
    """``samples`` seeds ``seed, seed+1, ...``; a random start when ``seed`` is None or -1."""
    if seed is None or seed < 0:
        seed = secrets.randbelow(MAX_SEED + 1)
    if seed > MAX_SEED:
        raise InvalidInput(f"seed must be between 0 and {MAX_SEED}.", field="seed")
    return [(seed + i) % (MAX_SEED + 1) for i in range(samples)]


@dataclass
class Canvas:
    image: Image.Image  # what the result is composited over (outpainting: pre-filled)
    mask: np.ndarray  # effective mask, 255 = regenerate
    outpaint: tuple[int, int, int, int] | None = None  # left, top, right, bottom


def canvas_mask(
    size: tuple[int, int],
    mask: Image.Image | None,
    options: MaskOptions,
    outpaint: Outpaint | None,
    edits: bool = False,
) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """The effective mask of the canvas a job paints (255 = regenerate) and the outpaint sides
    (left, top, right, bottom), from the image's size alone: the one rule that both a job and
    the studio's overlay (``POST /api/masks/effective``) use. ``edits`` (an edit model runs
    the job): no mask means the whole picture, edited by the instruction."""
    width, height = size
    user_mask = effective_mask(mask, size, options) if mask is not None else None
    if outpaint is None:
        if user_mask is None and edits:
            return np.full((height, width), 255, np.uint8), None
        if user_mask is None:
            raise InvalidInput(
                "A mask is required unless outpaint is given (or an edit model edits the "
                "whole picture).",
                field="mask",
            )
        return user_mask, None
    left, top, right, bottom = outpaint.sides(width, height)
    if min(left, top, right, bottom) < 0:
        raise InvalidInput("outpaint sides must not be negative.", field="outpaint")
    new_w, new_h = width + left + right, height + top + bottom
    if new_w * new_h > MAX_CANVAS_PIXELS:
        raise InvalidInput(
            f"The outpainted canvas would be {new_w}x{new_h}; the limit is "
            f"{MAX_CANVAS_PIXELS} pixels.",
            field="outpaint",
        )
    new_area = np.full((new_h, new_w), 255, np.uint8)
    new_area[top : top + height, left : left + width] = 0
    # The new area is regenerated fully; the seam's feather lies outside it (SPEC section 3),
    # over the original's outermost ``mask_blur`` pixels, like every other mask's.
    values = feather(new_area, options.blur)
    if user_mask is not None:
        inner = values[top : top + height, left : left + width]
        values[top : top + height, left : left + width] = np.maximum(inner, user_mask)
    return values, (left, top, right, bottom)


def prepare_canvas(
    request: InpaintRequest, fill_method: str = "patchmatch", edits: bool = False
) -> Canvas:
    """The canvas and its effective mask (the input and its mask first brought to the size a
    ``resize`` asks for; ``edits``: see ``canvas_mask``); refuses a request that would
    regenerate nothing."""
    original, user_mask = to_rgb(request.image), request.mask
    if request.resize is not None:
        if user_mask is not None:
            # The mask's size is checked against the image as sent (a mismatch is refused as
            # without a resize), then both move to the size asked for, alike.
            check_mask_size(user_mask.size, original.size, request.mask_options.exact_size)
            user_mask = resize_to(user_mask, Resize(*original.size, "stretch"))
            user_mask = resize_to(user_mask, request.resize)
        original = resize_to(original, request.resize)
    mask, sides = canvas_mask(
        original.size, user_mask, request.mask_options, request.outpaint, edits
    )
    canvas = (
        Canvas(original, mask)
        if sides is None
        else _outpaint_canvas(original, mask, sides, fill_method)
    )
    if not canvas.mask.any():
        raise InvalidInput(
            "The mask selects no pixels to inpaint (check the mask polarity of this endpoint).",
            field="mask",
        )
    return canvas


def prepare_mask(request: InpaintRequest, edits: bool = False) -> np.ndarray:
    """The effective mask only (validation before queueing: no pre-fill is computed)."""
    return prepare_canvas(request, fill_method="none", edits=edits).mask


def _outpaint_canvas(
    original: Image.Image,
    mask: np.ndarray,
    sides: tuple[int, int, int, int],
    fill_method: str,
) -> Canvas:
    """The original placed on the larger canvas; the new area pre-filled with ``fill_method``."""
    width, height = original.size
    left, top, _, _ = sides
    new_area = np.full(mask.shape, 255, np.uint8)
    new_area[top : top + height, left : left + width] = 0
    pixels = np.zeros((*mask.shape, 3), np.uint8)
    pixels[top : top + height, left : left + width] = np.asarray(original)
    if fill_method != "none" and new_area.any():
        # Pre-fill the new area so the model starts from plausible colours and texture.
        pixels = fill(pixels, new_area, fill_method)
        pixels[top : top + height, left : left + width] = np.asarray(original)
    return Canvas(Image.fromarray(pixels, "RGB"), mask, sides)


def _expand_to_aspect(box, aspect: float, size) -> tuple[int, int, int, int]:
    """Grow ``box`` around its centre to ``aspect`` (w / h), kept inside the image."""
    x0, y0, x1, y1 = box
    width, height = size
    w, h = x1 - x0, y1 - y0
    if w / h < aspect:
        w = min(width, round(h * aspect))
    else:
        h = min(height, round(w / aspect))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    nx0 = int(min(max(round(cx - w / 2), 0), width - w))
    ny0 = int(min(max(round(cy - h / 2), 0), height - h))
    return nx0, ny0, nx0 + w, ny0 + h


def masked_region(
    mask: np.ndarray,
    padding: int,
    working_size: int | None,
    multiple: int = 8,
    context_share: float = 0.0,
    sizes: tuple[tuple[int, int], ...] = (),
) -> tuple[int, int, int, int]:
    """The mask's bounding box plus ``padding`` (at least ``context_share`` of the box's longer
    side), expanded to the working aspect ratio (with ``sizes``: the nearest one's)."""
    height, width = mask.shape
    ys, xs = np.nonzero(mask)
    extent = max(int(xs.max() - xs.min()), int(ys.max() - ys.min())) + 1
    padding = max(padding, round(context_share * extent))
    box = (
        max(0, int(xs.min()) - padding),
        max(0, int(ys.min()) - padding),
        min(width, int(xs.max()) + 1 + padding),
        min(height, int(ys.max()) + 1 + padding),
    )
    if sizes:
        w, h = nearest(box[2] - box[0], box[3] - box[1], sizes)
        box = _expand_to_aspect(box, w / h, (width, height))
    elif working_size:
        w, h = working_dimensions(box[2] - box[0], box[3] - box[1], working_size, multiple)
        box = _expand_to_aspect(box, w / h, (width, height))
    return box


def choose_region(
    mask: np.ndarray,
    area: str,
    padding: int,
    working_size: int | None,
    context: int = 0,
    multiple: int = 8,
    context_share: float = 0.0,
    sizes: tuple[tuple[int, int], ...] = (),
) -> tuple[int, int, int, int] | None:
    """The crop to inpaint, or None for the whole canvas; it reaches ``padding`` and at least
    ``context`` pixels (and ``context_share`` of the box's longer side) beyond the mask's box."""
    check("inpaint_area", area)
    check("padding", padding)
    if area == "whole":
        return None
    box = masked_region(mask, max(padding, context), working_size, multiple, context_share, sizes)
    region = (box[2] - box[0]) * (box[3] - box[1])
    if area == "auto" and region >= AUTO_CROP_SHARE * mask.size:
        return None
    return box


@dataclass
class Prepared:
    """A request brought to the backend's input, and what it takes to bring the output back."""

    canvas: Canvas
    seeds: list[int]
    box: tuple[int, int, int, int] | None
    region_image: Image.Image
    region_mask: np.ndarray
    call: BackendCall
    #: Keep the alpha the backend's images have (``InpaintRequest.transparent``).
    transparent: bool = False


def prepare(request: InpaintRequest, backend: Backend, fill_method: str = "patchmatch") -> Prepared:
    """Canvas, seeds, only-masked crop and working resolution: the backend's call."""
    check("samples", request.samples)
    if request.masked_content not in MASKED_CONTENT:
        raise InvalidInput(
            f"Unknown masked content {request.masked_content!r}; choose one of {MASKED_CONTENT}.",
            field="masked_content",
        )
    # Refuse an unknown scheduler before any work; the backend gets the canonical name.
    scheduler = canonical_name(request.scheduler) if request.scheduler else None
    canvas = prepare_canvas(request, fill_method if backend.prefill else "none", backend.edits)
    seeds = resolve_seeds(request.seed, request.samples)
    # A backend that fills an outpaint's new area itself copies it from the original beside
    # it: the crop keeps as much of the original as the new area is deep (``padding`` alone,
    # 32 px, would leave PatchMatch a sliver to copy a 128 px strip from).
    context = max(canvas.outpaint) if canvas.outpaint and not backend.prefill else 0
    box = choose_region(
        canvas.mask,
        request.inpaint_area,
        request.padding,
        backend.working_size,
        context,
        backend.size_multiple,
        backend.context_share,
        backend.working_sizes,
    )
    region_image, region_mask = canvas.image, canvas.mask
    if box is not None:
        x0, y0, x1, y1 = box
        region_image = canvas.image.crop(box)
        region_mask = canvas.mask[y0:y1, x0:x1]
    hole = np.where(region_mask > 0, 255, 0).astype(np.uint8)
    weights = region_mask
    model_image = region_image
    size = working_size(region_mask, backend, cropped=box is not None)
    if size != region_image.size:
        shrunk = _to_working_size(model_image, hole, weights, size)
        # A fill shrunk until every working pixel is masked (a selection of specks over the
        # whole picture: each working pixel takes the most masked weight it covers) would have
        # nothing left to fill from: it runs at full size.
        if backend.working_size or not shrunk[2].all():
            model_image, hole, weights = shrunk
    strength = request.denoising_strength
    if backend.uses_masked_content:
        model_image, strength = _masked_content(model_image, hole, request.masked_content, strength)
    call = BackendCall(
        image=model_image,
        hole=Image.fromarray(hole.astype(np.uint8), "L"),
        weights=Image.fromarray(weights.astype(np.uint8), "L"),
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        denoising_strength=strength,
        num_inference_steps=request.num_inference_steps,
        guidance_scale=request.guidance_scale,
        seeds=seeds,
        scheduler=scheduler,
        speed=request.speed,
        clip_skip=request.clip_skip,
        loras=tuple(request.loras),
        controlnet=request.controlnet,
        outpaint=canvas.outpaint is not None,
        reference_images=tuple(to_rgb(image) for image in request.reference_images),
        soft=request.soft,
        ip_adapter=request.ip_adapter,
        eraser=request.eraser,
    )
    return Prepared(canvas, seeds, box, region_image, region_mask, call, request.transparent)


def working_size(
    region_mask: np.ndarray, backend: Backend, cropped: bool = False
) -> tuple[int, int]:
    """The size ``backend`` works on a region (its effective mask given) at: its working size
    (a model; a ``cropped`` region: the nearest of its ``working_sizes`` when it has them),
    or the region's own size shrunk to at most ``max_pixels`` with a hole of at most
    ``max_hole_pixels`` (a fill)."""
    height, width = region_mask.shape
    if cropped and backend.working_sizes:
        return nearest(width, height, backend.working_sizes)
    if backend.working_size:
        return working_dimensions(width, height, backend.working_size, backend.size_multiple)
    scale = 1.0
    if backend.max_pixels:
        scale = min(scale, (backend.max_pixels / (width * height)) ** 0.5)
    if backend.max_hole_pixels:
        holes = max(1, int(np.count_nonzero(region_mask)))
        scale = min(scale, (backend.max_hole_pixels / holes) ** 0.5)
    if scale > LEAST_SHRINK:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def _to_working_size(
    image: Image.Image, hole: np.ndarray, weights: np.ndarray, size: tuple[int, int]
) -> tuple[Image.Image, np.ndarray, np.ndarray]:
    """Image, hole and effective mask brought to the working ``size``.

    Image and hole are resized with one filter, so every working pixel whose value draws on a
    hole pixel is in the hole: nothing under the mask (the object being removed) reaches the
    model as context. Area averaging when shrinking, bilinear when enlarging (no ringing
    either way). When shrinking, each working pixel's weight is at least the largest weight
    it covers: a pixel the result is composited over at full size is regenerated at the
    working size too, so nothing of the removed object comes back in the blend.
    """
    shrinking = size[0] < image.width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    pixels = cv2.resize(np.asarray(image), size, interpolation=interpolation)
    hole = np.where(cv2.resize(hole, size, interpolation=interpolation) > 0, 255, 0)
    if shrinking:
        reach = 2 * int(np.ceil(image.width / size[0])) + 1
        weights = cv2.dilate(weights, np.ones((reach, reach), np.uint8))
    weights = cv2.resize(weights, size, interpolation=interpolation)
    return Image.fromarray(pixels, "RGB"), hole, weights


def _masked_content(
    image: Image.Image, hole: np.ndarray, content: str, strength: float
) -> tuple[Image.Image, float]:
    """What a diffusion model starts the ``hole`` from (A1111's "masked content"), and the
    denoising strength: the picture there (``original``), a fill from the pixels around it
    (OpenCV's Telea, the quick blur-like fill A1111's ``fill`` is), flat mid-grey
    (``nothing``: what a latent of zeros decodes to, near enough), or noise alone
    (``noise``: the masked area denoised from pure noise, as at strength 1)."""
    if content == "noise":
        return image, 1.0
    # A hole over everything (plain img2img) has nothing around it to fill from: as
    # AUTOMATIC1111 without a mask, the picture is the start.
    if content == "original" or not hole.any() or (content == "fill" and hole.all()):
        return image, strength
    pixels = np.asarray(image).copy()
    if content == "fill":
        pixels = fill(pixels, hole.astype(np.uint8), "telea")
    else:
        pixels[hole > 0] = 127
    return Image.fromarray(pixels, "RGB"), strength


def finish(
    prepared: Prepared, output: BackendOutput, backend: Backend, inference_seconds: float
) -> InpaintResult:
    """Composite the backend's images back into the canvas; the result and its metadata."""
    canvas, box = prepared.canvas, prepared.box
    images = []
    for generated, seed in zip(output.images, prepared.seeds, strict=False):
        if backend.working_size is None and generated.size != prepared.region_image.size:
            generated = _enlarge_fill(prepared, generated, seed)
        # The alpha a model painted, kept where asked: composited in RGBA (the photo opaque).
        mode = "RGBA" if prepared.transparent and generated.mode == "RGBA" else "RGB"
        region_out = composite_images(prepared.region_image, generated, prepared.region_mask, mode)
        if box is None:
            images.append(region_out)
        else:
            full = canvas.image.convert(mode)
            full.paste(region_out, box[:2])
            images.append(full)
    metadata = dict(output.metadata)
    if any(image.mode == "RGBA" for image in images):
        metadata["background"] = "transparent"
    metadata["inpaint_area"] = "masked" if box is not None else "whole"
    if box is not None:
        metadata["crop"] = list(box)
    metadata["working_size"] = list(prepared.call.image.size)
    if canvas.outpaint is not None:
        metadata["outpaint"] = dict(
            zip(("left", "top", "right", "bottom"), canvas.outpaint, strict=True)
        )
    return InpaintResult(
        images=images,
        seeds=prepared.seeds,
        engine=backend.name,
        model=output.model,
        width=canvas.image.width,
        height=canvas.image.height,
        inference_seconds=inference_seconds,
        metadata=metadata,
    )


def _enlarge_fill(prepared: Prepared, generated: Image.Image, seed: int) -> Image.Image:
    """A fill made at a reduced working size back at the region's size, refined a scale at a
    time with the photo's own grain (``multiscale.refine``)."""
    enlarged = refine(
        np.asarray(prepared.region_image.convert("RGB")),
        prepared.region_mask > 0,
        np.asarray(prepared.call.image.convert("RGB")),
        np.asarray(generated.convert("RGB")),
        seed=seed,
    )
    return Image.fromarray(enlarged, "RGB")


def run_prepared(
    prepared: Prepared, backend: Backend, progress: ProgressCallback, is_cancelled: CancelCheck
) -> InpaintResult:
    if is_cancelled():
        raise Cancelled()
    started = time.perf_counter()
    output = backend.inpaint(prepared.call, progress, is_cancelled)
    return finish(prepared, output, backend, time.perf_counter() - started)


#: The settings a model batch's one pipeline call takes for all its entries, by the names a
#: backend call and a job's parameters share: jobs that differ in one never share a batch
#: (``batch_key`` here; ``services.runs._batch_params`` claims companions by the same list,
#: before the pictures are read).
BATCH_SETTINGS = (
    "num_inference_steps",
    "denoising_strength",
    "guidance_scale",
    "scheduler",
    "clip_skip",
    "soft",
    "speed",
)


def batch_key(call: BackendCall) -> tuple:
    """Calls with equal keys can share one model batch: same working size, BATCH_SETTINGS and
    the additions the pipeline is set up with once for all (LoRAs, ControlNet, references,
    a layered call's regions)."""
    return (
        call.image.size,
        *(getattr(call, name) for name in BATCH_SETTINGS),
        call.loras,
        call.controlnet,
        len(call.reference_images),
        call.ip_adapter,
        call.eraser,
        # An IP-Adapter batch encodes one reference picture for all its entries: a job's own.
        tuple(id(image) for image in call.reference_images) if call.ip_adapter else (),
        # A call with regions sets the denoiser's attention up for its own: alone in its batch.
        tuple(id(region) for region in call.regions),
    )


def run_inpaint_batch(
    requests: list[InpaintRequest],
    backend: Backend,
    *,
    progresses: list[ProgressCallback],
    cancel_checks: list[CancelCheck],
    fill_method: str = "patchmatch",
) -> list[InpaintResult | Exception]:
    """Several jobs at once: those whose calls share the first batchable call's key run as one
    backend batch (``backend.inpaint_batch``), the rest one by one. Each entry of the answer is
    that job's result or the exception that ended it (``Cancelled`` included)."""
    outcomes: list[InpaintResult | Exception | None] = [None] * len(requests)
    prepared: dict[int, Prepared] = {}
    for index, request in enumerate(requests):
        try:
            prepared[index] = prepare(request, backend, fill_method)
        except Exception as exc:  # noqa: BLE001 - that job's outcome, the others go on
            outcomes[index] = exc
    batch: list[int] = []
    if backend.supports_batch and prepared:
        key = batch_key(next(iter(prepared.values())).call)
        batch = [i for i, p in prepared.items() if batch_key(p.call) == key]
    if len(batch) > 1:
        started = time.perf_counter()
        try:
            outputs = backend.inpaint_batch(
                [prepared[i].call for i in batch],
                [progresses[i] for i in batch],
                [cancel_checks[i] for i in batch],
            )
        except Exception as exc:  # noqa: BLE001 - the whole batch shares the failure
            outputs = [exc] * len(batch)
        seconds = time.perf_counter() - started
        for index, output in zip(batch, outputs, strict=True):
            outcomes[index] = (
                output
                if isinstance(output, Exception)
                else finish(prepared[index], output, backend, seconds)
            )
    for index, job in prepared.items():
        if outcomes[index] is None:
            try:
                outcomes[index] = run_prepared(
                    job, backend, progresses[index], cancel_checks[index]
                )
            except Exception as exc:  # noqa: BLE001 - that job's outcome, the others go on
                outcomes[index] = exc
    return outcomes  # type: ignore[return-value]
