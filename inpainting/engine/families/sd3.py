"""Stable Diffusion 3 and 3.5 (Medium, Large): a rectified-flow MMDiT transformer on the
16-channel SD3 VAE, three text encoders (CLIP ViT-L, OpenCLIP bigG, T5-XXL), classifier-free
guidance with a negative prompt, flow-matching Euler only. Stability released no inpainting
variant: the inpaint pipeline repaints the mask with the base model, keeping the rest."""

from __future__ import annotations

from .base import Capabilities, Family, Preview

_JOINT_BLOCK = "joint_blocks.0.context_block.adaLN_modulation.1.bias"
_PREFIXES = ("", "model.diffusion_model.")

#: ComfyUI's latent-to-RGB factors for the SD3 VAE (comfy/latent_formats.py, SD3).
PREVIEW = Preview(
    factors=(
        (-0.0922, -0.0175, 0.0749),
        (0.0311, 0.0633, 0.0954),
        (0.1994, 0.0927, 0.0458),
        (0.0856, 0.0339, 0.0902),
        (0.0587, 0.0272, -0.0496),
        (-0.0006, 0.1104, 0.0309),
        (0.0978, 0.0306, 0.0427),
        (-0.0042, 0.1038, 0.1358),
        (-0.0194, 0.0020, 0.0669),
        (-0.0488, 0.0130, -0.0268),
        (0.0922, 0.0988, 0.0951),
        (-0.0278, 0.0524, -0.0542),
        (0.0332, 0.0456, 0.0895),
        (-0.0069, -0.0030, -0.0810),
        (-0.0596, -0.0465, -0.0293),
        (-0.1448, -0.1463, -0.1189),
    ),
    bias=(0.2394, 0.2135, 0.1925),
)


def detect(table: dict[str, dict]) -> bool | None:
    if not any(prefix + _JOINT_BLOCK in table for prefix in _PREFIXES):
        return None
    return False  # a base model: there is no SD3 inpainting variant


FAMILY = Family(
    name="sd3",
    label="Stable Diffusion 3.5",
    working_size=1024,
    size_multiple=16,  # 8 px per latent, the transformer's 2x2 patches
    denoiser="transformer",
    inpaint_channels=None,
    base_channels=16,
    folder_classes=(
        "StableDiffusion3Pipeline",
        "StableDiffusion3InpaintPipeline",
        "StableDiffusion3Img2ImgPipeline",
    ),
    pipeline="StableDiffusion3InpaintPipeline",
    cuda_dtype="bfloat16",
    text_encoding="plain",
    capabilities=Capabilities(
        negative_prompt=True,
        schedulers=False,
        clip_skip=False,
        prompt_weighting=False,
        loras=False,
        controlnet=False,
        default_steps=40,  # Stability's settings for SD 3.5 Medium: 40 steps, CFG 4.5
        max_steps=150,
        default_guidance=4.5,
        guidance_range=(1.0, 20.0),
    ),
    preview=PREVIEW,
    detect=detect,
)
