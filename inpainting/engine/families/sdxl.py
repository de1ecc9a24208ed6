"""Stable Diffusion XL: two CLIP text encoders (ViT-L and OpenCLIP bigG), a UNet with the
text-and-time embedding, 1024 px; 9 input channels (inpainting) or 4 (base)."""

from __future__ import annotations

from .base import Family, Unsupported
from .sd15 import SD_CAPABILITIES, SD_PREVIEW, UNET_IN, unet_channels

_TEXT_2 = "conditioner.embedders.1.model.positional_embedding"  # OpenCLIP bigG
_REFINER = "conditioner.embedders.0.model.text_projection"


def detect(table: dict[str, dict]) -> bool | None:
    if UNET_IN not in table:
        return None
    if _TEXT_2 not in table:
        if _REFINER in table:
            raise Unsupported("an SDXL refiner; it cannot inpaint on its own.")
        return None
    return unet_channels(table, "a checkpoint") == 9


FAMILY = Family(
    name="sdxl",
    label="Stable Diffusion XL",
    working_size=1024,
    size_multiple=8,
    denoiser="unet",
    inpaint_channels=9,
    base_channels=4,
    folder_classes=(
        "StableDiffusionXLPipeline",
        "StableDiffusionXLInpaintPipeline",
        "StableDiffusionXLImg2ImgPipeline",
    ),
    pipeline="StableDiffusionXLInpaintPipeline",
    cuda_dtype="float16",
    text_encoding="weighted",
    capabilities=SD_CAPABILITIES,
    preview=SD_PREVIEW,
    detect=detect,
    add_on_width=2048,  # CLIP ViT-L and OpenCLIP ViT-bigG together
    lora_marks=("lora_te1_", "lora_te2_", "text_encoder_2."),
    controlnet_marks={"addition_embed_type": "text_time"},
    controlnet_pipeline="StableDiffusionXLControlNetInpaintPipeline",
)
