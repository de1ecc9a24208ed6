"""Cheap live previews: latents to RGB by the linear approximation, as a small JPEG.

The four SD 1.x latent channels map to RGB almost linearly; these factors are the widely
used approximation (as in A1111's "Approx cheap" and ComfyUI's latent previews). No VAE
decode, so a preview costs a tiny fraction of a denoising step.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

SD15_LATENT_RGB = np.array(
    [
        [0.3512, 0.2297, 0.3227],
        [0.3250, 0.4974, 0.2350],
        [-0.2829, 0.1762, 0.2721],
        [-0.2120, -0.2616, -0.7177],
    ],
    dtype=np.float32,
)


def latents_to_jpeg(latents: np.ndarray, quality: int = 70) -> bytes:
    """``latents`` C x H x W (one sample, C = 4) -> JPEG bytes at latent resolution."""
    channels = latents.shape[0]
    factors = SD15_LATENT_RGB[:channels]
    rgb = np.einsum("chw,cr->hwr", latents.astype(np.float32), factors)
    pixels = np.clip((rgb + 1.0) * 127.5, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
