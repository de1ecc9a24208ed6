"""Upscaling: the output size (a factor or a target size), checked against a pixel limit before
any pixel work; Lanczos and nearest-neighbour resampling (no weights); and a super-resolution
model run over overlapping tiles, so a picture of any allowed size fits in bounded memory,
with the tiles blended across their overlap so that no seam shows.

A model here is any torch module that maps a ``(1, 3, h, w)`` batch in 0..1 to
``(1, 3, h * scale, w * scale)``: ESRGAN, Real-ESRGAN, SwinIR and the rest as spandrel loads
them. Its output is brought to the exact size asked for with Lanczos, as AUTOMATIC1111 does."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PIL import Image

from .types import Cancelled, InvalidInput

#: The engine name an upscale job records (its model: a resampler's name or an upscaler's).
ENGINE = "upscale"
#: The factors a request may ask for, and the one it gets when it names no size.
FACTOR_RANGE = (1.0, 4.0)
DEFAULT_FACTOR = 2.0
#: The longest side a request may name (more is refused before any arithmetic on it).
MAX_SIDE = 65536
#: Resamplers that need no weights, by the names clients give them.
RESAMPLERS = {
    "lanczos": Image.Resampling.LANCZOS,
    "nearest": Image.Resampling.NEAREST,
}
#: A tile's side in input pixels, and how far neighbouring tiles overlap.
TILE = 256
OVERLAP = 16


def target_size(
    size: tuple[int, int],
    *,
    factor: float | None = None,
    width: int | None = None,
    height: int | None = None,
    field: str = "upscaling_resize",
) -> tuple[int, int]:
    """The output size: ``factor`` times the input (1 to 4), or ``width`` and / or ``height``
    (one alone keeps the aspect ratio). A client mistake is ``InvalidInput`` on ``field``."""
    w, h = size
    if width or height:
        check_sides(width, height, field=field)
        out_w = width or round(w * height / h)
        out_h = height or round(h * width / w)
    else:
        low, high = FACTOR_RANGE
        if factor is None or not low <= factor <= high:
            raise InvalidInput(
                f"The upscale factor must be between {low:g} and {high:g}; got {factor}.",
                field=field,
            )
        out_w, out_h = round(w * factor), round(h * factor)
    if (out_w, out_h) != (w, h) and (out_w < w or out_h < h):
        raise InvalidInput(
            f"{out_w}x{out_h} is smaller than the picture ({w}x{h}); upscaling only enlarges.",
            field=field,
        )
    return max(1, out_w), max(1, out_h)


def check_sides(width: int | None, height: int | None, *, field: str) -> None:
    """A target width and height a request names: positive, at most ``MAX_SIDE``."""
    for side in (width, height):
        if side is not None and not 1 <= side <= MAX_SIDE:
            raise InvalidInput(
                f"The target width and height must be 1 to {MAX_SIDE} pixels; got {side}.",
                field=field,
            )


def model_input(size: tuple[int, int], scale: int, max_pixels: int) -> tuple[int, int]:
    """The size a picture of ``size`` goes into a x``scale`` model at: its own, unless the
    model's output (before it is brought to the size asked for) would hold more than
    ``max_pixels``; then the picture is made smaller first, so the model's output fits. The
    memory of a model upscale is bounded by construction."""
    width, height = size
    if width * height * scale * scale <= max_pixels:
        return size
    shrink = math.sqrt(max_pixels / (width * height * scale * scale))
    return max(1, math.floor(width * shrink)), max(1, math.floor(height * shrink))


def summary(upscale: dict) -> str:
    """An upscale job's parameters for people: "2048x1536 (x2, lanczos)"."""
    factor = f"x{upscale['factor']:g}, " if upscale.get("factor") else ""
    return f"{upscale.get('width')}x{upscale.get('height')} ({factor}{upscale.get('upscaler')})"


def check_targets(sizes: list[tuple[int, int]], max_pixels: int, *, field: str) -> None:
    """Refuse outputs over ``max_pixels`` (UPSCALE_MAX_PIXELS) in all, one request's pictures
    together, before any pixel is read."""
    total = sum(width * height for width, height in sizes)
    if total <= max_pixels:
        return
    what = (
        f"The upscaled picture would be {sizes[0][0]}x{sizes[0][1]} pixels"
        if len(sizes) == 1
        else f"The {len(sizes)} upscaled pictures would be {total} pixels in all"
    )
    raise InvalidInput(
        f"{what}; the limit is {max_pixels} pixels in all (UPSCALE_MAX_PIXELS). Ask for a "
        "smaller factor or size" + ("." if len(sizes) == 1 else ", or fewer pictures at once."),
        field=field,
    )


def resample(image: Image.Image, size: tuple[int, int], method: str = "lanczos") -> Image.Image:
    """``image`` at ``size`` by a resampler that needs no weights (``RESAMPLERS``)."""
    if image.size == tuple(size):
        return image.copy()
    return image.resize(size, RESAMPLERS[method])


def tile_boxes(width: int, height: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Boxes ``(x0, y0, x1, y1)`` of at most ``tile`` px a side covering the picture, each
    overlapping its neighbours by at least ``overlap`` px (the last row and column end at the
    edge)."""

    def starts(length: int) -> list[int]:
        if length <= tile:
            return [0]
        step = tile - overlap
        points = list(range(0, length - tile, step))
        return points + [length - tile]

    return [
        (x, y, min(x + tile, width), min(y + tile, height))
        for y in starts(height)
        for x in starts(width)
    ]


def _ramp(length: int, before: int, after: int) -> np.ndarray:
    """Weights along one side of a tile: rising over ``before`` px, falling over ``after`` px
    (0 where a tile meets the picture's edge: full weight there)."""
    weights = np.ones(length, dtype=np.float32)
    if before:
        weights[:before] = (np.arange(before, dtype=np.float32) + 0.5) / before
    if after:
        weights[length - after :] = np.minimum(
            weights[length - after :], (np.arange(after, 0, -1, dtype=np.float32) - 0.5) / after
        )
    return weights


def run_tiled(
    model,
    image: Image.Image,
    scale: int,
    *,
    tile: int = TILE,
    overlap: int = OVERLAP,
    on_tile: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Image.Image:
    """``model`` over ``image`` tile by tile: each tile's output is weighted by ramps across
    the parts that overlap its neighbours, and the sums divided by the weights. ``on_tile(done,
    total)`` after each tile; ``cancelled()`` is asked before each one (``Cancelled``)."""
    import torch  # noqa: PLC0415 - heavy: imported where a model upscales

    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    height, width = rgb.shape[:2]
    boxes = tile_boxes(width, height, tile, overlap)
    out = np.zeros((height * scale, width * scale, 3), dtype=np.float32)
    weight = np.zeros((height * scale, width * scale, 1), dtype=np.float32)
    # A spandrel descriptor says where it runs; a bare module by its parameters.
    parameter = None if hasattr(model, "device") else next(model.parameters(), None)
    device = getattr(model, "device", parameter.device if parameter is not None else "cpu")
    dtype = getattr(model, "dtype", parameter.dtype if parameter is not None else torch.float32)
    for done, (x0, y0, x1, y1) in enumerate(boxes):
        if cancelled is not None and cancelled():
            raise Cancelled()
        patch = torch.from_numpy(rgb[y0:y1, x0:x1].transpose(2, 0, 1).copy())[None]
        with torch.inference_mode():
            result = model(patch.to(device=device, dtype=dtype)).float().clamp(0, 1)
        pixels = result[0].permute(1, 2, 0).cpu().numpy()
        if pixels.shape[:2] != ((y1 - y0) * scale, (x1 - x0) * scale):
            raise InvalidInput(
                f"The model made a {pixels.shape[1]}x{pixels.shape[0]} tile from "
                f"{x1 - x0}x{y1 - y0}: it is not a x{scale} upscaler."
            )
        # Ramp only where a neighbour overlaps (never at the picture's edges).
        ramp = overlap * scale
        across = _ramp(pixels.shape[1], ramp if x0 > 0 else 0, ramp if x1 < width else 0)
        down = _ramp(pixels.shape[0], ramp if y0 > 0 else 0, ramp if y1 < height else 0)
        w = (down[:, None] * across[None, :])[..., None]
        ys, xs = slice(y0 * scale, y1 * scale), slice(x0 * scale, x1 * scale)
        out[ys, xs] += pixels * w
        weight[ys, xs] += w
        if on_tile is not None:
            on_tile(done + 1, len(boxes))
    np.divide(out, np.maximum(weight, 1e-6, out=weight), out=out)  # in place: no third copy
    del weight
    np.rint(np.multiply(out, 255.0, out=out), out=out)
    return Image.fromarray(np.clip(out, 0, 255, out=out).astype(np.uint8), "RGB")


def upscale(
    image: Image.Image,
    size: tuple[int, int],
    *,
    model=None,
    scale: int = 1,
    method: str = "lanczos",
    on_tile: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    max_pixels: int | None = None,
) -> Image.Image:
    """``image`` at ``size``: through ``model`` (its own ``scale``, tiled; the picture made
    smaller first where the model's output would hold more than ``max_pixels``:
    ``model_input``) and then Lanczos to the exact size, or by ``method`` alone when there is
    no model."""
    if model is None:
        return resample(image.convert("RGB"), size, method)
    if max_pixels is not None:
        image = resample(image.convert("RGB"), model_input(image.size, scale, max_pixels))
    enlarged = run_tiled(model, image, scale, on_tile=on_tile, cancelled=cancelled)
    return resample(enlarged, size, "lanczos")
