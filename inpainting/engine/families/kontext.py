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

from dataclasses import replace

from . import flux

#: FLUX.1 with Kontext's pipelines and defaults: the same transformer width, text encoders,
#: VAE, packed latents and distilled guidance.
FAMILY = replace(
    flux.FAMILY,
    name="flux-kontext",
    label="FLUX.1 Kontext",
    inpaint_channels=64,
    folder_classes=("FluxKontextPipeline",),
    pipeline="FluxKontextInpaintPipeline",
    capabilities=replace(
        flux.FAMILY.capabilities,
        default_steps=28,  # Black Forest Labs' examples
        default_guidance=2.5,
        guidance_range=(1.0, 10.0),
    ),
    detect=lambda table: None,  # single files: flux.detect says why not
    single_file_denoiser=None,
    edit_pipeline="FluxKontextPipeline",
    # The pipelines would bring the picture (and the result) to the nearest of Kontext's
    # trained sizes; the runner has already chosen the working size, in the model's multiple.
    call_arguments={"_auto_resize": False},
    area_argument="max_area",
)
