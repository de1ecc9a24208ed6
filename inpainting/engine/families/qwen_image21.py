"""Qwen-Image-2.1 (Alibaba's Qwen team, 2026-09-20): a 7-billion-parameter single-stream,
block-causal transformer that generates and edits by an instruction with up to ten pictures.
A Qwen3-VL model reads the words with the pictures; each picture's latents travel before the
noise as more tokens, one token per latent (unpatched) of its VAE (64 channels, 16 px per
latent, RGBA in and out); sides in multiples of 32 px, 1 MP. Guidance is true
classifier-free guidance (``true_cfg_scale`` with the negative prompt), off by default (1.0:
the model is meant to be sampled without it).

Its pipeline has no mask argument: masks are extra condition pictures. A masked edit here
gives the pipeline the crop around the mask, then the mask itself (white where it may
change, as RGB), then the reference pictures; DreamLayer composites the result through the
mask as every result, so each pixel outside it is the input's. Its VAE decodes RGBA: with
``background: transparent`` the alpha it paints is kept (an RGBA result, composited in RGBA
over the opaque photo), else the result is RGB. Licence: the Qwen
Research License (non-commercial): its models are refused where ALLOW_NONCOMMERCIAL_MODELS
is off, however they came into the library. A diffusers folder only."""

from __future__ import annotations

from .base import Capabilities, Family, Preview

FAMILY = Family(
    name="qwen-image-21",
    label="Qwen-Image-2.1",
    inpaint_channels=64,  # 64 latent channels, one token per latent
    folder_classes=("QwenImage21Pipeline",),
    pipeline="QwenImage21Pipeline",  # masks as condition pictures: one pipeline for all edits
    capabilities=Capabilities(
        negative_prompt=True,
        default_steps=40,  # the pipeline's default
        max_steps=100,
        default_guidance=1.0,  # true_cfg_scale: off, as Qwen sample it
        guidance_range=(1.0, 10.0),
    ),
    preview=Preview.of("qwen-image-21", sequence=True, per_latent=16),
    detect=lambda table: None,  # published as a diffusers folder
    size_multiple=32,  # 16 px per latent, and its positions in pairs of latents
    edit_pipeline="QwenImage21Pipeline",
    # Ten pictures in all: the one it edits, its mask when there is one, and eight more.
    reference_images=8,
    guidance_argument="true_cfg_scale",
    vl_processor=True,
    fixed_picture_area=True,  # its pictures at output_resolution's square: 1 MP
    mask_argument=None,  # the mask goes in as a picture
    takes_strength=False,
    licence="qwen-research-license",
    paints_alpha=True,
)
