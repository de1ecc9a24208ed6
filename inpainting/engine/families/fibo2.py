"""Bria FIBO 2.0 (Bria AI, 2026-10): generation and editing by an instruction (its "Edit"
release), with up to five pictures, and a masked edit of one picture through the pipeline's
own ``mask``: the region greyed out before the picture is encoded, as in its training, and
regenerated. Qwen3-VL reads the prompt and the pictures (six bundles of three hidden states);
a perceiver squeezes them into gist tokens the transformer's layers read; the FLUX.2 VAE
(32 latent channels, 8 px per latent, 2x2 patches); 1024 px. The prompt may be a structured
JSON caption (FIBO's training) or plain words; the negative prompt is the pipeline's own
empty JSON caption. Licence: CC BY-NC 4.0 (non-commercial): its models are refused where
ALLOW_NONCOMMERCIAL_MODELS is off, however they came into the library. A diffusers folder
only (no single file, no GGUF read here)."""

from __future__ import annotations

from .base import Capabilities, Family, Preview

FAMILY = Family(
    name="fibo2",
    label="Bria FIBO 2.0",
    inpaint_channels=32,  # 32 latent channels, patchified by the transformer itself
    folder_classes=("BriaFibo2Pipeline",),
    pipeline="BriaFibo2Pipeline",  # its own mask: one pipeline for masked and whole edits
    capabilities=Capabilities(
        default_steps=30,  # the pipeline's default
        max_steps=100,
        default_guidance=5.0,  # the pipeline's default
        guidance_range=(1.0, 20.0),
    ),
    preview=Preview.of("flux2"),  # the FLUX.2 VAE's latents, [32, H/8, W/8] in its callback
    detect=lambda table: None,  # published as a diffusers folder
    edit_pipeline="BriaFibo2Pipeline",
    reference_images=4,  # beside the picture it edits: five pictures in all
    vl_processor=True,
    fixed_picture_area=True,  # its other pictures at its default_sample_size's area: 1 MP
    mask_argument="mask",
    takes_strength=False,  # the masked region is regenerated whole
    licence="cc-by-nc-4-0",
)
