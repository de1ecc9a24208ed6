"""Soft inpainting: differential diffusion for the UNet families (SD 1.5, SDXL).

Without it a gray mask pixel is regenerated fully and the result is cross-faded with the
original by the gray value afterwards: two pictures laid over each other. With it each pixel
joins the denoising at the step its mask value says: a pixel of value m (0..1) is denoised for
the last m of the schedule, and until then it is set back, after every step, to the original
picture's latents noised to the next step (the scheduler's own ``add_noise``, as diffusers'
inpainting pipelines keep the unmasked area of a 4-channel model). White is denoised from the
first step, black is never (the runner's composite then keeps it byte-identical), and a
feather band changes gradually, by diffusion. The same idea as ComfyUI's DifferentialDiffusion
node and the soft-inpainting extension of AUTOMATIC1111 / Forge.

An entry whose mask has no gray value is left alone: it paints exactly as without ``soft``.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image

#: Mixed into a sample's seed for the noise the original is noised with (the pipeline's own
#: generator is left as it is, so the rest of the picture draws the same numbers).
NOISE_SEED = 0x5F7


def has_gray(weights: Image.Image | None) -> bool:
    """Whether an effective mask (0..255) has a value strictly between black and white."""
    if weights is None:
        return False
    values = np.asarray(weights)
    return bool(((values > 0) & (values < 255)).any())


class SoftBlend:
    """``blend(pipeline, step, latents)``: the latents after denoising step ``step``, with each
    pixel that has not joined yet set back to the original noised to the next step."""

    def __init__(self, pipe: Any, entries: list[tuple[Any, int]]):
        device, dtype = pipe.unet.device, pipe.unet.dtype
        originals, noises = [], []
        for call, seed in entries:
            pixels = pipe.image_processor.preprocess(
                call.image, height=call.image.height, width=call.image.width
            ).to(device, dtype)
            generator = torch.Generator(device="cpu").manual_seed(seed ^ NOISE_SEED)
            latents = pipe._encode_vae_image(pixels, generator=generator)  # scaled, as the pipe
            originals.append(latents[0])
            noises.append(torch.randn(latents[0].shape, generator=generator).to(device, dtype))
        self.originals = torch.stack(originals)
        self.noises = torch.stack(noises)
        height, width = self.originals.shape[-2:]  # the latent grid (the VAE's own factor)
        self.strengths = torch.stack(
            [
                torch.from_numpy(
                    cv2.resize(
                        np.asarray(call.weights, dtype=np.float32) / 255.0,
                        (width, height),
                        interpolation=cv2.INTER_AREA,
                    )
                )[None]
                for call, _ in entries
            ]
        ).to(device)  # B x 1 x h x w, 0..1
        soft = [has_gray(call.weights) for call, _ in entries]
        self.soft = torch.tensor(soft, device=device).view(-1, 1, 1, 1)

    def __call__(self, pipeline: Any, step: int, latents: Any) -> Any:
        total = pipeline.num_timesteps
        scheduler = pipeline.scheduler
        used = scheduler.timesteps[len(scheduler.timesteps) - total :]
        if step + 1 < total:
            later = used[step + 1].repeat(latents.shape[0])
            original = scheduler.add_noise(self.originals, self.noises, later)
        else:  # the last step: the original itself
            original = self.originals
        # A pixel of strength m is denoised during the last m of the schedule.
        joined = self.strengths > 1.0 - (step + 1) / total
        keep = joined | ~self.soft  # entries without gray paint as without soft
        return torch.where(keep, latents, original.to(latents.dtype))
