"""Stable Diffusion 3 and 3.5 (Medium, Large): a rectified-flow MMDiT transformer on the
16-channel SD3 VAE, three text encoders (CLIP ViT-L, OpenCLIP bigG, T5-XXL), classifier-free
guidance with a negative prompt, flow-matching Euler only. Stability released no inpainting
variant: the inpaint pipeline repaints the mask with the base model, keeping the rest."""

from __future__ import annotations

from .base import TRANSFORMER_PREFIXES, Capabilities, Family, Preview

_JOINT_BLOCK = "joint_blocks.0.context_block.adaLN_modulation.1.bias"


def detect(table: dict[str, dict]) -> bool | None:
    if not any(prefix + _JOINT_BLOCK in table for prefix in TRANSFORMER_PREFIXES):
        return None
    return False  # a base model: there is no SD3 inpainting variant


FAMILY = Family(
    name="sd3",
    label="Stable Diffusion 3.5",
    inpaint_channels=None,
    base_channels=16,
    folder_classes=(
        "StableDiffusion3Pipeline",
        "StableDiffusion3InpaintPipeline",
        "StableDiffusion3Img2ImgPipeline",
    ),
    pipeline="StableDiffusion3InpaintPipeline",
    capabilities=Capabilities(
        negative_prompt=True,
        default_steps=40,  # Stability's settings for SD 3.5 Medium: 40 steps, CFG 4.5
        max_steps=150,
        default_guidance=4.5,
        guidance_range=(1.0, 20.0),
    ),
    preview=Preview.of("sd3"),
    detect=detect,
)
