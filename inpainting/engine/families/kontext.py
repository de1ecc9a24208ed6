"""FLUX.1 Kontext [dev] (Black Forest Labs): FLUX.1's 12-billion-parameter transformer trained to
edit a picture by an instruction. The picture's packed latents travel beside the noise as more
tokens (``img_in`` of 64 channels, as FLUX.1 [dev]'s), with CLIP ViT-L and T5-XXL text
encoders and the FLUX VAE, 1024 px; guidance is distilled (one pass per step, no negative
prompt).

With a mask, diffusers' ``FluxKontextInpaintPipeline`` regenerates the masked area only;
without one, ``FluxKontextPipeline`` edits the whole picture. Black Forest Labs' single file has
the same tensors as FLUX.1 [dev]'s, so Kontext is told from its diffusers folder
(``model_index.json``); ``flux.detect`` says so for a single file. A GGUF file of the
transformer (the community's quantized ones) is told by its name, which says Kontext
(``flux1-kontext-dev-Q8_0.gguf``), and runs with an installed Kontext folder's other parts."""

from __future__ import annotations

from dataclasses import replace

from . import flux
from .base import Unsupported

KONTEXT_CHANNELS = 64


def gguf_detect(table: dict[str, dict], name: str) -> bool | None:
    """A GGUF FLUX.1 transformer of 64 input channels named as Kontext's; FLUX.1 [dev] and
    [schnell], which have the same tensors, do not edit here."""
    if flux.flux1_channels(table) != KONTEXT_CHANNELS:
        return None
    if "kontext" not in name.lower():
        raise Unsupported(
            "a FLUX.1 transformer of 64 input channels whose name does not say Kontext: FLUX.1 "
            "[dev] and [schnell] have the same tensors and do not run here. A FLUX.1 Kontext "
            "GGUF file has 'kontext' in its name (flux1-kontext-dev-Q8_0.gguf): rename it so "
            "if it is one."
        )
    return True


#: FLUX.1 with Kontext's pipelines and defaults: the same transformer width, text encoders,
#: VAE, packed latents and distilled guidance.
FAMILY = replace(
    flux.FAMILY,
    name="flux-kontext",
    label="FLUX.1 Kontext",
    inpaint_channels=KONTEXT_CHANNELS,
    folder_classes=("FluxKontextPipeline",),
    pipeline="FluxKontextInpaintPipeline",
    capabilities=replace(
        flux.FAMILY.capabilities,
        default_steps=28,  # Black Forest Labs' examples
        default_guidance=2.5,
        guidance_range=(1.0, 10.0),
    ),
    detect=lambda table: None,  # single files: flux.detect says why not
    gguf_detect=gguf_detect,
    edit_pipeline="FluxKontextPipeline",
    # The pipelines would bring the picture (and the result) to the nearest of Kontext's
    # trained sizes; the runner has already chosen the working size, in the model's multiple.
    call_arguments={"_auto_resize": False},
    area_argument="max_area",
)
