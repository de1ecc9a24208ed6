"""Write tiny, randomly initialised pipelines of the flow-matching families to a folder, made
offline: their real layouts at a toy width. FLUX.1 Fill's transformer takes what the real one
takes (``img_in`` of 384 channels: 64 packed latent, 64 packed masked-image latent, 256
packed 8x8 mask); SD 3's is an MMDiT with three text encoders. Both sit on a 16-channel VAE
with 8 px per latent (four blocks), with tiny CLIP and T5 encoders and a T5 (Unigram)
tokenizer generated here. The output is noise; the arithmetic, the packing and the loading
code are the real ones."""

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


def _tiny_vae16(*, shift_factor: float, scaling_factor: float):
    """A 16-channel VAE with 8 px per latent (four blocks), as FLUX's and SD3's are."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
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
        shift_factor=shift_factor,
        scaling_factor=scaling_factor,
        sample_size=64,
    )


def _tiny_t5():
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(
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


def write_tiny_flux_fill_model(folder: str | Path, *, seed: int = 0) -> Path:
    """Create the tiny FLUX.1 Fill pipeline in ``folder`` (safetensors) and return it."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxFillPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel

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
    vae = _tiny_vae16(shift_factor=0.1159, scaling_factor=0.3611)  # the FLUX VAE's
    text = {**TINY_TEXT, "projection_dim": 32, "hidden_act": "gelu"}
    text = {**TINY_TEXT, "projection_dim": 32, "hidden_act": "gelu"}
    pipe = FluxFillPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True),
        vae=vae,
        text_encoder=CLIPTextModel(CLIPTextConfig(**text)),
        tokenizer=_tokenizer(text["max_position_embeddings"]),
        text_encoder_2=_tiny_t5(),
        tokenizer_2=_t5_tokenizer(),
        transformer=transformer,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def write_tiny_sd3_model(folder: str | Path, *, seed: int = 0) -> Path:
    """A tiny Stable Diffusion 3 pipeline in ``folder``: an MMDiT transformer on a 16-channel
    VAE with 8 px per latent, two CLIP text encoders with projections and a T5 encoder (the
    tokenizers generated here), flow-matching Euler."""
    import torch
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    folder = Path(folder)
    torch.manual_seed(seed)
    text = {**TINY_TEXT, "projection_dim": 32, "hidden_act": "gelu"}
    pipe = StableDiffusion3Pipeline(
        transformer=SD3Transformer2DModel(
            sample_size=32,
            patch_size=2,
            in_channels=16,
            num_layers=1,
            attention_head_dim=8,
            num_attention_heads=4,
            caption_projection_dim=32,
            joint_attention_dim=32,  # T5's width; CLIP's 32 + 32 are cut to it, as SD3 does
            pooled_projection_dim=64,  # both CLIP encoders' pooled outputs side by side
            out_channels=16,
        ),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_tiny_vae16(shift_factor=0.0609, scaling_factor=1.5305),  # the SD3 VAE's
        text_encoder=CLIPTextModelWithProjection(CLIPTextConfig(**text)),
        tokenizer=_tokenizer(text["max_position_embeddings"]),
        text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**text)),
        tokenizer_2=_tokenizer(text["max_position_embeddings"]),
        text_encoder_3=_tiny_t5(),
        tokenizer_3=_t5_tokenizer(),
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder
