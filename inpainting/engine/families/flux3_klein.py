"""FLUX.3 [klein] (Black Forest Labs, 2026-11): a 5.5-billion-parameter transformer that
generates and edits by an instruction with up to ten pictures. A Qwen3-VL model (4B: eight
hidden states, layers 4 to 32, stacked) reads the words; the FLUX.2 VAE (32 latent channels,
8 px per latent, 2x2 patches: 128 channels a token at 16 px); 1024 px. Its diffusers pipeline
is a modular one (``Flux3DistilledModularPipeline``, ``Flux3ModularPipeline``: blocks, loaded
from the folder's ``modular_model_index.json``), which ``backends.modular`` runs as the other
families' pipelines run. Its first block is a prompt upsampler (a Qwen3.5 9B fine-tune,
published apart: ``black-forest-labs/flux-3-image-klein-pup``) that rewrites the words into
the caption FLUX.3 is trained on; it runs when the model's folder holds it
(``prompt_upsampler/``), and the memory plan counts it with the text encoders.

The pipeline has no mask: its layout boxes place what an edit changes. A masked edit here
gives the pipeline the crop around the mask and one layout box, the mask's bounding box, that
the words describe; DreamLayer composites the result through the mask as every result, so
each pixel outside it is the input's. Without the upsampler, the box goes into the caption
the way the upsampler writes it (the words citing the box, then the box table).

The released [klein] is step-distilled (16 steps, no classifier-free guidance:
``Flux3DistilledModularPipeline``); the "base" release is not (50 steps, guidance 3.5, a
negative prompt). Licence: the FLUX Kommunity License (non-commercial): its models are
refused where ALLOW_NONCOMMERCIAL_MODELS is off, however they came into the library. A
diffusers folder only."""

from __future__ import annotations

from dataclasses import replace

from .base import Capabilities, Family, Preview

#: The released, step-distilled [klein].
FAMILY = Family(
    name="flux3-klein",
    label="FLUX.3 [klein]",
    inpaint_channels=128,  # 32 latent channels in 2x2 patches
    folder_classes=("Flux3DistilledModularPipeline",),
    pipeline="Flux3DistilledModularPipeline",
    modular=True,
    capabilities=Capabilities(
        default_steps=16,  # step-distilled
        max_steps=50,
        default_guidance=1.0,  # distilled in: one pass a step
        guidance_range=(1.0, 1.0),
        guidance=False,
    ),
    preview=Preview.of("flux2", packed=True),  # the FLUX.2 VAE's, one token a 2x2 patch
    detect=lambda table: None,  # published as a diffusers folder
    edit_pipeline="Flux3DistilledModularPipeline",
    reference_images=9,  # ten pictures in all with the one it edits
    mask_argument=None,
    mask_as="box",  # the mask's bounding box as a layout box
    takes_strength=False,
    licence="flux-kommunity-license",
)

#: The "base" release: not distilled, classifier-free guidance with a negative prompt.
BASE = replace(
    FAMILY,
    name="flux3-klein-base",
    label="FLUX.3 [klein] base",
    folder_classes=("Flux3ModularPipeline",),
    pipeline="Flux3ModularPipeline",
    edit_pipeline="Flux3ModularPipeline",
    capabilities=Capabilities(
        default_steps=50,
        max_steps=100,
        default_guidance=3.5,  # the pipeline's guider
        guidance_range=(1.0, 20.0),
        negative_prompt=True,
    ),
)
