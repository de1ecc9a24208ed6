"""Write a tiny, randomly initialised Stable Diffusion inpainting model to a folder.

The tests (and CI-sized benchmarks) load it through the same ``from_pretrained`` path as a
real model: a UNet with 9 input channels (4 latent + 1 mask + 4 masked-image latent), a tiny
VAE, a tiny CLIP text encoder and a byte-level BPE tokenizer generated here, so nothing is
downloaded. The weights are random: the output is noise, the arithmetic is real.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from ..engine import EngineConfig

_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def _write_tokenizer(folder: Path, max_length: int = 16) -> None:
    """A minimal CLIP BPE vocabulary: special tokens, single characters and a few merges."""
    folder.mkdir(parents=True, exist_ok=True)
    tokens = ["<|startoftext|>", "<|endoftext|>"]
    tokens += list(_ALPHABET) + [c + "</w>" for c in _ALPHABET]
    merges = ["#version: 0.2"]
    for word in ("red", "rose", "cat", "sky", "tree"):
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            merged = parts[0] + parts[1]
            merges.append(f"{parts[0]} {parts[1]}")
            if merged not in tokens:
                tokens.append(merged)
            parts = [merged] + parts[2:]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("\n".join(merges) + "\n")
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "CLIPTokenizer",
                "model_max_length": max_length,
                "bos_token": "<|startoftext|>",
                "eos_token": "<|endoftext|>",
                "unk_token": "<|endoftext|>",
                "pad_token": "<|endoftext|>",
            }
        )
    )


def _tokenizer(max_length: int):
    """A ``CLIPTokenizer`` over the minimal vocabulary of ``_write_tokenizer``."""
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as folder:
        _write_tokenizer(Path(folder), max_length)
        return CLIPTokenizer.from_pretrained(folder)


#: The tiny VAE and CLIP text encoder of the test pipelines (SD 1.5 and SDXL alike).
TINY_VAE = dict(
    block_out_channels=(16, 32),
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
    up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
    latent_channels=4,
    norm_num_groups=8,
    sample_size=32,
)
TINY_TEXT = dict(
    bos_token_id=0,
    eos_token_id=1,
    pad_token_id=1,
    hidden_size=32,
    intermediate_size=37,
    num_attention_heads=4,
    num_hidden_layers=2,
    layer_norm_eps=1e-5,
    max_position_embeddings=16,
    vocab_size=1000,
)

#: The published Stable Diffusion 1.5 inpainting architecture (UNet 320/640/1280/1280 with
#: cross-attention 768, the SD VAE, a CLIP ViT-L/14 text encoder): random weights, real cost.
SD15 = {
    "unet": dict(
        sample_size=64,
        in_channels=9,
        out_channels=4,
        layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=768,
        attention_head_dim=8,
        norm_num_groups=32,
    ),
    "vae": dict(
        block_out_channels=(128, 256, 512, 512),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=2,
        norm_num_groups=32,
        sample_size=512,
    ),
    "text": dict(
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        hidden_size=768,
        intermediate_size=3072,
        num_attention_heads=12,
        num_hidden_layers=12,
        max_position_embeddings=77,
        vocab_size=49408,
        projection_dim=768,
        hidden_act="quick_gelu",
    ),
}


def write_sd15_architecture_model(folder: str | Path, *, seed: int = 0) -> Path:
    """The SD 1.5 inpainting architecture with random weights (about 4 GB in fp32)."""
    return write_tiny_inpaint_model(folder, seed=seed, architecture=SD15)


def write_tiny_inpaint_model(
    folder: str | Path, *, seed: int = 0, architecture: dict | None = None
) -> Path:
    """Create the tiny pipeline (or ``architecture``) in ``folder`` (safetensors weights) and
    return the folder."""
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionInpaintPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = Path(folder)
    torch.manual_seed(seed)
    tiny = {
        "unet": dict(
            sample_size=16,
            in_channels=9,
            out_channels=4,
            layers_per_block=1,
            block_out_channels=(32, 64),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=8,
            norm_num_groups=8,
        ),
        "vae": TINY_VAE,
        "text": TINY_TEXT,
    }
    config = architecture or tiny
    unet = UNet2DConditionModel(**config["unet"])
    vae = AutoencoderKL(**config["vae"])
    text_encoder = CLIPTextModel(CLIPTextConfig(**config["text"]))
    tokenizer = _tokenizer(config["text"]["max_position_embeddings"])
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionInpaintPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def write_tiny_sdxl_inpaint_model(
    folder: str | Path, *, seed: int = 0, in_channels: int = 9
) -> Path:
    """A tiny SDXL inpainting pipeline (two CLIP text encoders, the text-time conditioning of
    SDXL's UNet) in ``folder``: the real SDXL code path at a toy size (``in_channels`` 4 makes
    a base model)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLInpaintPipeline,
        UNet2DConditionModel,
    )
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
    )

    folder = Path(folder)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=16,
        in_channels=in_channels,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=32 + 6 * 8,  # pooled text + six size numbers
        cross_attention_dim=32 + 48,  # both text encoders' hidden states side by side
        norm_num_groups=8,
    )
    vae = AutoencoderKL(**TINY_VAE)
    text = {**TINY_TEXT, "projection_dim": 32, "hidden_act": "gelu"}
    tokenizer = _tokenizer(text["max_position_embeddings"])
    # The second encoder is wider, as SDXL's is (1280 against 768): single-file loaders tell
    # the two apart by their width.
    wide = {**text, "hidden_size": 48, "intermediate_size": 61}
    pipe = StableDiffusionXLInpaintPipeline(
        vae=vae,
        text_encoder=CLIPTextModel(CLIPTextConfig(**text)),
        text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**wide)),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=EulerDiscreteScheduler(
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            timestep_spacing="leading",
            steps_offset=1,
        ),
        requires_aesthetics_score=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def tiny_config(model: str | Path, **overrides) -> EngineConfig:
    """How the tests run a tiny pipeline: the diffusers engine, on the CPU, at 64 px."""
    settings = dict(
        engine="diffusers", load_diffusers=True, model=str(model), device="cpu", working_size=64
    )
    return EngineConfig(**{**settings, **overrides})
