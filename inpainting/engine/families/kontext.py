"""FLUX.1 Kontext [dev] (Black Forest Labs): FLUX.1's 12-billion-parameter transformer trained to
edit a picture by an instruction. The picture's packed latents travel beside the noise as more
tokens (``img_in`` of 64 channels, as FLUX.1 [dev]'s), with CLIP ViT-L and T5-XXL text
encoders and the FLUX VAE, 1024 px; guidance is distilled (one pass per step, no negative
prompt).

With a mask, diffusers' ``FluxKontextInpaintPipeline`` regenerates the masked area only;
without one, ``FluxKontextPipeline`` edits the whole picture. Black Forest Labs' single file has
the same tensors as FLUX.1 [dev]'s, so Kontext is told from its diffusers folder
(``model_index.json``); ``flux.detect`` says so for a single file."""

from __future__ import annotations

from .base import Capabilities, Family
from .flux import PACKED_PREVIEW

FAMILY = Family(
    name="flux-kontext",
    label="FLUX.1 Kontext",
    working_size=1024,
    size_multiple=16,  # 8 px per latent, latents packed in 2x2 patches
    denoiser="transformer",
    inpaint_channels=64,
    base_channels=None,
    folder_classes=("FluxKontextPipeline",),
    pipeline="FluxKontextInpaintPipeline",
    cuda_dtype="bfloat16",
    text_encoding="plain",
    capabilities=Capabilities(
        negative_prompt=False,
        schedulers=False,
        clip_skip=False,
        prompt_weighting=False,
        loras=False,
        controlnet=False,
        default_steps=28,  # Black Forest Labs' examples
        max_steps=100,
        default_guidance=2.5,
        guidance_range=(1.0, 10.0),
    ),
    preview=PACKED_PREVIEW,
    detect=lambda table: None,  # single files: flux.detect says why not
    edit_pipeline="FluxKontextPipeline",
    # The pipelines would bring the picture (and the result) to the nearest of Kontext's
    # trained sizes; the runner has already chosen the working size, in the model's multiple.
    call_arguments={"_auto_resize": False},
    area_argument="max_area",
)
