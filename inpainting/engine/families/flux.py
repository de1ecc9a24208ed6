"""FLUX.1 Fill [dev] (Black Forest Labs): a 12-billion-parameter rectified-flow transformer
that takes the masked image and the mask beside its latents (``img_in`` of 384 channels: 64
packed latent, 64 packed masked-image latent, 256 packed 8x8 mask), a CLIP ViT-L and a T5-XXL
text encoder, the 16-channel FLUX VAE, 1024 px. Guidance is distilled into the model (one
pass per step, no negative prompt); its scheduler is flow-matching Euler only."""

from __future__ import annotations

from .base import TRANSFORMER_PREFIXES, Capabilities, Family, Preview, Unsupported

_DOUBLE_BLOCK = "double_blocks.0.img_attn.norm.key_norm.scale"
#: FLUX.1's per-block modulation (FLUX.2 shares one across its blocks: no such key).
_FLUX1_MODULATION = "double_blocks.0.img_mod.lin.weight"
_IMG_IN = "img_in.weight"  # [3072, in_channels]
FILL_CHANNELS = 384


def transformer_prefix(table: dict[str, dict]) -> str | None:
    """The key prefix of a FLUX transformer in a single file, or None when there is none."""
    return next((p for p in TRANSFORMER_PREFIXES if p + _DOUBLE_BLOCK in table), None)


def detect(table: dict[str, dict]) -> bool | None:
    prefix = transformer_prefix(table)
    if prefix is None:
        return None
    shape = table.get(prefix + _IMG_IN, {}).get("shape", [])
    if len(shape) != 2 or shape[1] != FILL_CHANNELS:
        raise Unsupported(
            f"a FLUX.1 base transformer (img_in of {shape[1] if len(shape) == 2 else '?'} "
            "channels); the FLUX model that inpaints here is FLUX.1 Fill [dev] (384). FLUX.1 "
            "Kontext has the same tensors as FLUX.1 [dev] in one file: copy in its diffusers "
            "folder (black-forest-labs/FLUX.1-Kontext-dev) to edit by words."
        )
    return True


def flux1_channels(table: dict[str, dict]) -> int | None:
    """The input channels (``img_in``) of a FLUX.1 transformer in one file; None when the
    table holds none (a FLUX.2 transformer included: its modulation is shared)."""
    prefix = transformer_prefix(table)
    if prefix is None or prefix + _FLUX1_MODULATION not in table:
        return None
    shape = table.get(prefix + _IMG_IN, {}).get("shape", [])
    return shape[1] if len(shape) == 2 else 0


def gguf_detect(table: dict[str, dict], name: str) -> bool | None:
    """A GGUF FLUX.1 Fill transformer (384 input channels); other FLUX.1 ones are Kontext's
    to tell (``kontext.gguf_detect``)."""
    return True if flux1_channels(table) == FILL_CHANNELS else None


FAMILY = Family(
    name="flux",
    label="FLUX.1 Fill",
    inpaint_channels=FILL_CHANNELS,
    folder_classes=("FluxFillPipeline",),
    pipeline="FluxFillPipeline",
    capabilities=Capabilities(
        default_steps=50,
        max_steps=100,  # twice Black Forest Labs' recommended 50: more only costs time
        default_guidance=30.0,
        guidance_range=(1.0, 100.0),
        regions=True,  # the joint attention's mask (backends.regional)
        fast_tier=True,
    ),
    preview=Preview.of("flux", packed=True),  # FLUX moves its latents as 2x2 patches
    detect=detect,
    single_file_denoiser="FluxTransformer2DModel",
    gguf_detect=gguf_detect,
    attention_argument="joint_attention_kwargs",
)
