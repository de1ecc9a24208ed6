"""Masks: the effective mask exactly as a job would use it, the picture of a job's regenerated
area, and masks made without weights."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import replace

import numpy as np
from django.db.models.fields.files import FieldFile
from PIL import Image

from accounts.models import User

from .. import engine, gate
from ..engine import segment
from ..engine.masks import grow
from ..gate import PIXELS
from ..models import Generation, Mask
from ..params import GenerationParams
from ..uploads import (
    IMAGE_FORMATS,
    MASK_FORMATS,
    check_dimensions,
    decode_image,
    image_size,
    read_upload,
)
from .derived import derived_picture
from .files import generation_request, stored_mask


def mask_preview(
    *,
    user: User,
    mask_file,
    size: tuple[int, int],
    options: engine.MaskOptions,
    outpaint: engine.Outpaint | None = None,
) -> bytes:
    """The effective mask of the job's canvas as a grayscale PNG (255 = regenerated), exactly as
    a job would use it: at the image's size, or at the outpainted canvas' size with its new area.
    Made through the web process' gate (``user``'s share of it), for the canvas' pixels.

    The studio draws its overlay from this, so the rule stays in the engine alone.
    """
    check_dimensions(*size, field="width")  # the requested size, before any pixel work
    canvas = _canvas_size(size, outpaint)
    data = read_upload(mask_file, field="mask") if mask_file else None
    sent = image_size(data, field="mask", formats=MASK_FORMATS) if data else (0, 0)
    # The mask decoded and scaled, and the canvas' mask worked on (a few at a time).
    cost = gate.MASK_PREVIEW.pixels(canvas) + gate.MASK_SENT.pixels(sent)
    with PIXELS.held(user=user.pk, pixels=cost, what=gate.MASK_PREVIEW.what):
        mask = decode_image(data, field="mask", formats=MASK_FORMATS) if data else None
        values, _ = engine.canvas_mask(size, mask, options, outpaint)
        return engine.encode_png(Image.fromarray(values, "L"))


def _canvas_size(size: tuple[int, int], outpaint: engine.Outpaint | None) -> tuple[int, int]:
    """The size of a job's canvas: the picture's, plus what an outpaint adds on each side."""
    if outpaint is None:
        return size
    left, top, right, bottom = outpaint.sides(*size)
    return size[0] + max(0, left) + max(0, right), size[1] + max(0, top) + max(0, bottom)


def generation_regenerated(*, generation: Generation) -> FieldFile:
    """The stored picture of the job's regenerated area (``generation_regenerated_png``),
    made at its first request and kept beside the job."""
    return derived_picture(
        generation=generation,
        kind="regenerated",
        extension="png",
        make=lambda: generation_regenerated_png(generation=generation),
    )


def generation_painted_mask(*, generation: Generation) -> FieldFile | None:
    """The stored painted mask of the job (``generation_painted_mask_png``; None: the job had
    no mask), made at its first request and kept beside the job."""
    if generation.mask_id is None:
        return None
    return derived_picture(
        generation=generation,
        kind="painted-mask",
        extension="png",
        make=lambda: generation_painted_mask_png(generation=generation),
    )


def generation_regenerated_png(*, generation: Generation) -> bytes:
    """The job's input on its canvas (larger when outpainted; the new area black) with the
    effective mask the job uses tinted as the studio's overlay is: one picture of what is
    regenerated, whichever polarity the mask came in. Made through the web process' gate, on
    the job owner's share."""
    return generation_regenerated_encoded(generation=generation, encode=engine.encode_png)


def generation_regenerated_encoded(
    *, generation: Generation, encode: Callable[[Image.Image], bytes]
) -> bytes:
    """The picture of ``generation_regenerated_png``, encoded by ``encode`` (a PNG, or the
    thumbnail the detail page shows)."""
    outpaint = GenerationParams.from_json(generation.params).outpaint
    size = _canvas_size(
        (generation.source.width, generation.source.height),
        engine.Outpaint(**outpaint) if outpaint else None,
    )
    # The input, its mask and the tinted canvas at once.
    with PIXELS.doing(gate.REGENERATED, size, user=generation.owner_id):
        # (Its inputs were checked when the job was created: the engine's InvalidInput, a
        # 400 naming the field, is not expected here.)
        canvas = engine.prepare_canvas(
            generation_request(generation, with_references=False),
            fill_method="none",
            # A stored job without a mask or an outpaint was accepted for an edit model
            # only: the whole picture is regenerated.
            edits=generation.mask_id is None,
        )
        return encode(engine.tint_regenerated(canvas.image, canvas.mask))


def generation_painted_mask_png(*, generation: Generation) -> bytes | None:
    """The job's mask as the studio paints one: white = regenerated, at the input's size, with
    its polarity, alpha rule, threshold and invert applied and before grow and blur (the job's
    settings add those again). "Edit again" loads it onto the canvas as strokes; None: the job
    had no mask."""
    if generation.mask_id is None:
        return None
    options = GenerationParams.from_json(generation.params).mask_options
    size = (generation.source.width, generation.source.height)
    with PIXELS.doing(gate.PAINTED_MASK, size, user=generation.owner_id):
        mask = stored_mask(generation)
        if mask is None:
            return None
        values = engine.effective_mask(mask, size, replace(options, grow=0, blur=0))
        return engine.encode_png(Image.fromarray(values, "L"))


def generation_mask_colour(*, generation: Generation) -> str | None:
    """Which pixels of the job's mask file, as sent, are regenerated: "white", "black",
    "transparent" or "opaque" (None: no mask). From the mask's row; a mask stored before its
    transparency was recorded is decoded once, through the web process' gate, on the job
    owner's share."""
    if generation.mask_id is None:
        return None
    mask = generation.mask
    if mask.transparent is None:  # stored before it was recorded: read once, and kept
        size = (mask.width, mask.height)
        with PIXELS.doing(gate.MASK_TRANSPARENCY, size, user=generation.owner_id):
            mask.transparent = engine.has_transparent_pixels(stored_mask(generation))
        Mask.objects.filter(pk=mask.pk).update(transparent=mask.transparent)
    options = GenerationParams.from_json(generation.params).mask_options
    return engine.regenerated_colour(mask.transparent, options)


def mask_generate(
    *,
    user: User,
    image_file,
    method: str,
    box=None,
    points=(),
    point=None,
    tolerance: int = 32,
    mask_mode: str = "black_inpaints",
) -> bytes:
    """A mask PNG from GrabCut (box and / or points) or a colour selection (flood = connected),
    made through the web process' gate on ``user``'s share."""
    data = read_upload(image_file, field="image")
    size = image_size(data, field="image", formats=IMAGE_FORMATS)
    # The picture, its working copies and the selection.
    with PIXELS.doing(gate.SELECTION, size, user=user.pk):
        image = decode_image(data, field="image", formats=IMAGE_FORMATS)
        if method == "grabcut":
            selected = segment.grabcut(
                image,
                box=box,
                foreground=[p[:2] for p in points if len(p) < 3 or p[2]],
                background=[p[:2] for p in points if len(p) >= 3 and not p[2]],
            )
        else:
            selected = segment.colour_select(
                image, point=point[:2], tolerance=tolerance, contiguous=method == "flood"
            )
        return engine.encode_png(segment.selection_to_mask(selected, mask_mode))


def mask_grow_png(png: bytes, pixels: int, *, user: User) -> bytes:
    """A mask PNG (white = selected) grown by ``pixels``, or shrunk when it is negative, through
    the web process' gate on ``user``'s share."""
    if pixels == 0:
        return png
    size = image_size(png, field="mask", formats=MASK_FORMATS)
    with PIXELS.doing(gate.MASK_GROWN, size, user=user.pk):
        values = np.asarray(Image.open(io.BytesIO(png), formats=MASK_FORMATS).convert("L"))
        return engine.encode_png(Image.fromarray(grow(values.copy(), pixels), "L"))
