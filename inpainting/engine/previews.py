"""Cheap live previews: latents to RGB by a family's linear approximation, as a small JPEG.

A family's latent channels map to RGB almost linearly (``families.*.preview``: the factors
A1111's "Approx cheap" and ComfyUI's latent previews use). No VAE decode, so a preview costs
a tiny fraction of a denoising step.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from .families import Preview
from .families.sd15 import SD_PREVIEW


def unpack(latents: np.ndarray, height: int, width: int) -> np.ndarray:
    """Packed latents (a sequence of 2x2 patches, [H/2 * W/2, C * 4]) as C x H x W."""
    channels = latents.shape[-1] // 4
    patches = latents.reshape(height // 2, width // 2, channels, 2, 2)
    return patches.transpose(2, 0, 3, 1, 4).reshape(channels, height, width)


def latents_to_jpeg(
    latents: np.ndarray,
    preview: Preview = SD_PREVIEW,
    size: tuple[int, int] | None = None,
    quality: int = 70,
) -> bytes:
    """One sample's latents -> JPEG bytes at latent resolution: C x H x W, or packed or a
    sequence (then ``size`` is the latent grid's height and width)."""
    if preview.packed:
        latents = unpack(latents, *size)
    elif preview.sequence:
        latents = latents.reshape(*size, latents.shape[-1]).transpose(2, 0, 1)
    factors = np.asarray(preview.factors, np.float32)[: latents.shape[0]]
    rgb = np.einsum("chw,cr->hwr", latents.astype(np.float32), factors)
    rgb += np.asarray(preview.bias, np.float32)
    pixels = np.clip((rgb + 1.0) * 127.5, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
