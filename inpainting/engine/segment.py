"""Masks without weights: GrabCut from a box and / or points, and colour / flood selection."""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image

from .images import to_rgb
from .types import InvalidInput

#: Segmentation runs at most at this long side; the mask is scaled back to the image.
SEGMENT_SIZE = 1024
POINT_RADIUS = 5


def _work_copy(image: Image.Image) -> tuple[np.ndarray, float]:
    rgb = to_rgb(image)
    scale = min(1.0, SEGMENT_SIZE / max(rgb.size))
    if scale < 1.0:
        # At least one pixel on each side: a 16383 x 1 strip stays a strip.
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
    return np.asarray(rgb), scale


def _back_to_size(selected: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if selected.shape[::-1] == size:
        return selected
    scaled = cv2.resize(selected.astype(np.uint8) * 255, size, interpolation=cv2.INTER_LINEAR)
    return scaled >= 128


def _inside(x: float, y: float, width: int, height: int, field: str) -> None:
    if not (0 <= x < width and 0 <= y < height):
        raise InvalidInput(
            f"The point ({x}, {y}) is outside the {width}x{height} image.", field=field
        )


def grabcut(
    image: Image.Image,
    *,
    box: Sequence[int] | None = None,
    foreground: Sequence[Sequence[int]] = (),
    background: Sequence[Sequence[int]] = (),
    iterations: int = 5,
) -> np.ndarray:
    """Boolean H x W selection of the object in ``box`` and / or under the foreground points."""
    if box is None and not foreground:
        raise InvalidInput("GrabCut needs a box or at least one foreground point.", field="box")
    pixels, scale = _work_copy(image)
    height, width = pixels.shape[:2]
    labels = np.full((height, width), cv2.GC_PR_BGD, np.uint8)
    if box is not None:
        x0, y0, x1, y1 = box
        if not (0 <= x0 < x1 <= image.width and 0 <= y0 < y1 <= image.height):
            raise InvalidInput(
                "The box must be x0, y0, x1, y1 inside the image with x0 < x1 and y0 < y1.",
                field="box",
            )
        # Scaled outwards, so a box one pixel thin in the image stays one pixel thick.
        x0, y0 = min(width - 1, math.floor(x0 * scale)), min(height - 1, math.floor(y0 * scale))
        x1 = min(width, max(x0 + 1, math.ceil(x1 * scale)))
        y1 = min(height, max(y0 + 1, math.ceil(y1 * scale)))
        labels[:] = cv2.GC_BGD
        labels[y0:y1, x0:x1] = cv2.GC_PR_FGD
    for points, label in ((foreground, cv2.GC_FGD), (background, cv2.GC_BGD)):
        for x, y in points:
            # (the request's field that a wrong point came in was "box" before, with the box)
            _inside(x, y, image.width, image.height, field="box")
            cv2.circle(labels, (round(x * scale), round(y * scale)), POINT_RADIUS, int(label), -1)
    is_foreground = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    if is_foreground.all():  # the box is the whole image: nothing to tell apart
        return _back_to_size(is_foreground, image.size)
    if not is_foreground.any():
        raise InvalidInput("The box and points select no pixel of the image.", field="box")
    background_model = np.zeros((1, 65), np.float64)
    foreground_model = np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(
            cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR),
            labels,
            None,
            background_model,
            foreground_model,
            iterations,
            cv2.GC_INIT_WITH_MASK,
        )
    except cv2.error:
        raise InvalidInput(
            "GrabCut could not model this image (too few pixels inside or outside the box).",
            field="box",
        ) from None
    selected = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    return _back_to_size(selected, image.size)


def colour_select(
    image: Image.Image, *, point: Sequence[int], tolerance: int = 32, contiguous: bool = True
) -> np.ndarray:
    """Pixels whose colour is within ``tolerance`` of the colour at ``point`` (each channel);
    ``contiguous`` keeps only the region connected to the point (a flood fill)."""
    if not 0 <= tolerance <= 255:
        raise InvalidInput("tolerance must be between 0 and 255.", field="point")
    x, y = point
    _inside(x, y, image.width, image.height, field="point")
    pixels, scale = _work_copy(image)
    px, py = min(round(x * scale), pixels.shape[1] - 1), min(round(y * scale), pixels.shape[0] - 1)
    if contiguous:
        flood = np.zeros((pixels.shape[0] + 2, pixels.shape[1] + 2), np.uint8)
        flags = 4 | cv2.FLOODFILL_MASK_ONLY | cv2.FLOODFILL_FIXED_RANGE | (255 << 8)
        diff = (tolerance,) * 3
        cv2.floodFill(pixels.copy(), flood, (px, py), (0, 0, 0), diff, diff, flags)
        selected = flood[1:-1, 1:-1] > 0
    else:
        seed = pixels[py, px].astype(int)
        selected = (np.abs(pixels.astype(int) - seed) <= tolerance).all(axis=-1)
    return _back_to_size(selected, image.size)


def selection_to_mask(selected: np.ndarray, mode: str = "black_inpaints") -> Image.Image:
    """The selection as a mask PNG image in the requested polarity (selected = inpaint)."""
    if mode not in ("black_inpaints", "white_inpaints"):
        raise InvalidInput(f"Unknown mask_mode {mode!r}.", field="mask_mode")
    inpaint, keep = (0, 255) if mode == "black_inpaints" else (255, 0)
    return Image.fromarray(np.where(selected, inpaint, keep).astype(np.uint8), "L")
