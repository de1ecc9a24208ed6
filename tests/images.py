"""Small generated images and masks for the tests."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw


def gradient(width: int = 96, height: int = 64) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.float64)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float64)[:, None]
    rgb = np.stack(
        [
            np.broadcast_to(x, (height, width)),
            np.broadcast_to(y, (height, width)),
            np.full((height, width), 90.0),
        ],
        axis=-1,
    )
    return Image.fromarray(rgb.round().astype(np.uint8), "RGB")


def box_mask(
    width: int, height: int, box: tuple[int, int, int, int], *, inpaint_white: bool
) -> Image.Image:
    """A mask whose ``box`` is the area to inpaint, in the given polarity."""
    keep, fill = (0, 255) if inpaint_white else (255, 0)
    mask = Image.new("L", (width, height), keep)
    ImageDraw.Draw(mask).rectangle(box, fill=fill)
    return mask


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
