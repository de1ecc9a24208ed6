"""Z-Image (Tongyi-MAI): a single-stream diffusion transformer on the FLUX VAE (16 channels)
with a Qwen3 text encoder reading the prompt through its chat template; 1024 px, flow-matching
Euler only. Z-Image-Turbo, the released model, is distilled: 9 steps and no classifier-free
guidance (guidance 0); a guidance above 0 turns it on, and with it the negative prompt. There
is no inpainting variant: the inpaint pipeline repaints the mask with the base model."""

from __future__ import annotations

from .base import TRANSFORMER_PREFIXES, Capabilities, Family, Preview

#: Keys of the Z-Image transformer, as published (diffusers keeps its layout).
_KEYS = ("cap_embedder.1.weight", "context_refiner.0.attention.to_q.weight")


def detect(table: dict[str, dict]) -> bool | None:
    if not any(all(prefix + key in table for key in _KEYS) for prefix in TRANSFORMER_PREFIXES):
        return None
    return False  # a base model: Z-Image has no inpainting variant


FAMILY = Family(
    name="zimage",
    label="Z-Image",
    inpaint_channels=None,
    base_channels=16,
    folder_classes=("ZImagePipeline", "ZImageInpaintPipeline", "ZImageImg2ImgPipeline"),
    pipeline="ZImageInpaintPipeline",
    capabilities=Capabilities(
        negative_prompt=True,  # with guidance above 0
        default_steps=9,  # Z-Image-Turbo's published settings: 9 steps, guidance 0
        max_steps=100,
        default_guidance=0.0,
        guidance_range=(0.0, 10.0),
        negative_prompt_above=0.0,
    ),
    preview=Preview.of("flux"),  # the FLUX VAE's latent space, not packed here
    detect=detect,
)
