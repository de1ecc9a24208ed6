"""Stable Diffusion 1.x (1.5 and its fine-tunes): the 4-channel SD VAE, a CLIP ViT-L text
encoder, a UNet of 9 input channels (inpainting) or 4 (a base model, which the inpaint
pipeline also runs)."""

from __future__ import annotations

from .base import Capabilities, Family, Preview, Unsupported

# Keys of the original (LDM) layout, as diffusers' single-file loader and ComfyUI read them.
UNET_IN = "model.diffusion_model.input_blocks.0.0.weight"  # [320, in_channels, 3, 3]
_TEXT = "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight"
_SD2_TEXT = "cond_stage_model.model.token_embedding.weight"  # OpenCLIP ViT-H: SD 2.x
_SDXL_TEXT_2 = "conditioner.embedders.1.model.positional_embedding"

#: The four SD latent channels map to RGB almost linearly.
SD_PREVIEW = Preview.of("sd")

#: What SD 1.5 and SDXL accept alike.
SD_CAPABILITIES = Capabilities(
    negative_prompt=True,
    schedulers=True,
    clip_skip=True,
    prompt_weighting=True,
    loras=True,
    controlnet=True,
    default_steps=30,
    max_steps=150,
    default_guidance=7.5,
    guidance_range=(1.0, 20.0),
    soft_inpainting=True,
    ip_adapter=True,
    regions=True,  # a cross-attention processor (backends.regional)
)


def unet_channels(table: dict[str, dict], name: str) -> int:
    """The input channels of an original-layout UNet: 9 (inpainting) or 4 (base)."""
    shape = table[UNET_IN]["shape"]
    channels = shape[1] if len(shape) == 4 else None
    if channels not in (4, 9):
        raise Unsupported(
            f"{name} whose UNet has {channels} input channels; Stable Diffusion's has 4 or 9."
        )
    return channels


def detect(table: dict[str, dict]) -> bool | None:
    if UNET_IN not in table or _SDXL_TEXT_2 in table:
        return None
    if _SD2_TEXT in table:
        raise Unsupported("a Stable Diffusion 2.x checkpoint; not supported.")
    if _TEXT not in table:
        return None
    return unet_channels(table, "a checkpoint") == 9


FAMILY = Family(
    name="sd15",
    label="Stable Diffusion 1.5",
    working_size=512,
    size_multiple=8,
    denoiser="unet",
    inpaint_channels=9,
    base_channels=4,
    folder_classes=(
        "StableDiffusionPipeline",
        "StableDiffusionInpaintPipeline",
        "StableDiffusionImg2ImgPipeline",
    ),
    pipeline="StableDiffusionInpaintPipeline",
    cuda_dtype="float16",
    text_encoding="weighted",
    capabilities=SD_CAPABILITIES,
    preview=SD_PREVIEW,
    detect=detect,
    add_on_width=768,  # CLIP ViT-L
    add_on_fallback=True,
    controlnet_pipeline="StableDiffusionControlNetInpaintPipeline",
)
