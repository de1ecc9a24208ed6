"""Working resolution and compositing, shared by every backend."""

from __future__ import annotations

import numpy as np
from PIL import Image


def working_dimensions(
    width: int, height: int, long_side: int, multiple: int = 8
) -> tuple[int, int]:
    """The size the model works at: long side ``long_side``, both sides multiples of 8."""
    scale = long_side / max(width, height)
    w = max(multiple, round(width * scale / multiple) * multiple)
    h = max(multiple, round(height * scale / multiple) * multiple)
    return w, h


def composite(original: np.ndarray, generated: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Blend ``generated`` over ``original`` through ``mask`` (0 keep, 255 take generated).

    Integer arithmetic, so every pixel whose mask is 0 is byte-identical to ``original``.
    """
    if original.shape != generated.shape:
        raise ValueError(f"shape mismatch: {original.shape} vs {generated.shape}")
    weight = mask.astype(np.uint32)[..., None]
    blended = (
        original.astype(np.uint32) * (255 - weight) + generated.astype(np.uint32) * weight + 127
    ) // 255
    return blended.astype(np.uint8)


def composite_images(
    original: Image.Image, generated: Image.Image, mask: np.ndarray
) -> Image.Image:
    """Resize ``generated`` to ``original``'s size if needed and composite it through ``mask``."""
    if generated.size != original.size:
        generated = generated.resize(original.size, Image.Resampling.LANCZOS)
    out = composite(np.asarray(original.convert("RGB")), np.asarray(generated.convert("RGB")), mask)
    return Image.fromarray(out, "RGB")
