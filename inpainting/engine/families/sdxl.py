"""Stable Diffusion XL: two CLIP text encoders (ViT-L and OpenCLIP bigG), a UNet with the
text-and-time embedding, 1024 px; 9 input channels (inpainting) or 4 (base)."""

from __future__ import annotations

from dataclasses import replace

from . import sd15
from .base import Unsupported
from .sd15 import UNET_IN, unet_channels

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


#: SD 1.5's UNet family at 1024 px, with its second text encoder.
FAMILY = replace(
    sd15.FAMILY,
    name="sdxl",
    label="Stable Diffusion XL",
    working_size=1024,  # SD 1.5's is 512
    folder_classes=(
        "StableDiffusionXLPipeline",
        "StableDiffusionXLInpaintPipeline",
        "StableDiffusionXLImg2ImgPipeline",
    ),
    pipeline="StableDiffusionXLInpaintPipeline",
    detect=detect,
    add_on_width=2048,  # CLIP ViT-L and OpenCLIP ViT-bigG together
    add_on_fallback=False,
    lora_marks=("lora_te1_", "lora_te2_", "text_encoder_2."),
    controlnet_marks={"addition_embed_type": "text_time"},
    controlnet_pipeline="StableDiffusionXLControlNetInpaintPipeline",
)
