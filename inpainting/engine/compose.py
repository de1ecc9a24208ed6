"""Working resolution and compositing, shared by every backend, and the picture of the
regenerated area."""

from __future__ import annotations

import numpy as np
from PIL import Image


def working_dimensions(
    width: int, height: int, long_side: int, multiple: int = 8
) -> tuple[int, int]:
    """The size the model works at: long side ``long_side``, both sides multiples of
    ``multiple`` (8 for SD's latents, 16 for FLUX's 2x2 latent patches)."""
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


#: The regenerated area in every picture that shows it: the studio's overlay draws
#: rgba(255, 32, 80, 0.55) over the image, the detail page's "Regenerated area" the same.
REGENERATED_TINT = (255, 32, 80)
REGENERATED_OPACITY = 0.55


def tint_regenerated(image: Image.Image, mask: np.ndarray) -> Image.Image:
    """``image`` with the effective ``mask`` (255 = regenerate) tinted in ``REGENERATED_TINT``
    at alpha ``REGENERATED_OPACITY * mask / 255`` (unmasked pixels stay byte-identical)."""
    original = np.asarray(image.convert("RGB"))
    tint = np.empty_like(original)
    tint[...] = REGENERATED_TINT
    weight = np.rint(mask.astype(np.float32) * REGENERATED_OPACITY).astype(np.uint8)
    return Image.fromarray(composite(original, tint, weight), "RGB")


def composite_images(
    original: Image.Image, generated: Image.Image, mask: np.ndarray, mode: str = "RGB"
) -> Image.Image:
    """Resize ``generated`` to ``original``'s size if needed and composite it through ``mask``,
    in ``mode`` (RGBA: the alpha ``generated`` has, over ``original`` made opaque)."""
    if generated.size != original.size:
        generated = generated.resize(original.size, Image.Resampling.LANCZOS)
    out = composite(np.asarray(original.convert(mode)), np.asarray(generated.convert(mode)), mask)
    return Image.fromarray(out, mode)
