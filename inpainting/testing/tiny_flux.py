"""Write a tiny, randomly initialised FLUX.1 Fill pipeline to a folder: FLUX's real layout at a
toy width, made offline. The transformer takes what FLUX.1 Fill takes (``img_in`` of 384
channels: 64 packed latent, 64 packed masked-image latent, 256 packed 8x8 mask), beside a
16-channel VAE with 8 px per latent (four blocks), a tiny CLIP text encoder and a tiny T5
encoder, with a T5 (Unigram) tokenizer generated here. The output is noise; the arithmetic,
the packing and the loading code are the real ones."""

from __future__ import annotations

from pathlib import Path

from .tiny_model import TINY_TEXT, _tokenizer

#: Words of the tiny T5 vocabulary (any other word falls back to single characters).
_WORDS = "a an the red rose cat dog sky tree field of flowers photo bench sea".split()


def _t5_tokenizer(max_length: int = 32):
    """A T5 tokenizer (SentencePiece-style Unigram) over a few words and every character."""
    from transformers import T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [("\u2581" + word, -3.0) for word in _WORDS]
    pieces += [(char, -6.0) for char in "abcdefghijklmnopqrstuvwxyz0123456789"]
    return T5TokenizerFast(vocab=pieces, extra_ids=0, model_max_length=max_length)


def write_tiny_flux_fill_model(folder: str | Path, *, seed: int = 0) -> Path:
    """Create the tiny FLUX.1 Fill pipeline in ``folder`` (safetensors) and return it."""
    import torch
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        FluxFillPipeline,
        FluxTransformer2DModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    folder = Path(folder)
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=384,
        out_channels=64,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        guidance_embeds=True,  # FLUX.1 [dev] and Fill: distilled guidance
        axes_dims_rope=(4, 6, 6),
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=16,
        block_out_channels=(8, 8, 8, 8),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        norm_num_groups=4,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.1159,  # the FLUX VAE's
        scaling_factor=0.3611,
        sample_size=64,
    )
    text = {**TINY_TEXT, "projection_dim": 32, "hidden_act": "gelu"}
    t5 = T5EncoderModel(
        T5Config(
            vocab_size=64,
            d_model=32,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            relative_attention_max_distance=16,
        )
    )
    pipe = FluxFillPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True),
        vae=vae,
        text_encoder=CLIPTextModel(CLIPTextConfig(**text)),
        tokenizer=_tokenizer(text["max_position_embeddings"]),
        text_encoder_2=t5,
        tokenizer_2=_t5_tokenizer(),
        transformer=transformer,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder
