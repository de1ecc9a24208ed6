"""Write tiny, randomly initialised instruction-edit pipelines to a folder, made offline: their
real layouts at a toy width.

- Qwen-Image-Edit (and its Plus variant, which reads several pictures): the Qwen-Image MMDiT
  (2x2 patches, 64 packed channels) on the Qwen-Image VAE (a causal 3-D VAE with 16 latent
  channels, 8 px per latent), and a Qwen2.5-VL text encoder that reads the picture with the
  words, with its processor (a byte-level tokenizer with Qwen's chat and vision markers, the
  Qwen2-VL image processor) generated here.
- FLUX.1 Kontext: the FLUX.1 transformer (64 input channels: the picture's packed latents
  travel beside the noise as more tokens) with CLIP and T5 encoders, as FLUX.1 Fill's tiny
  pipeline.

The output is noise; the arithmetic, the packing and the loading code are the real ones."""

from __future__ import annotations

from pathlib import Path

from .tiny_flow import _t5_tokenizer, _tiny_t5, _tiny_vae16
from .tiny_model import TINY_TEXT, _tokenizer

#: Qwen's chat and vision markers (the edit pipelines write them into the prompt).
QWEN_MARKERS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)


def _qwen_vl_tokenizer():
    """Qwen2's tokenizer class over a byte-level vocabulary (no merges) and Qwen's markers."""
    from tokenizers import pre_tokenizers
    from transformers import Qwen2Tokenizer

    vocab = {char: i for i, char in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    for marker in QWEN_MARKERS:
        vocab[marker] = len(vocab)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[], model_max_length=4096)
    tokenizer.add_special_tokens({"additional_special_tokens": list(QWEN_MARKERS[1:])})
    return tokenizer


def _qwen_vl_processor(tokenizer):
    """The Qwen2-VL processor: the tokenizer and the image processor (14 px patches merged 2x2);
    pictures are brought to at most 112 x 112 px (16 visual tokens) for the tiny encoder."""
    from transformers import Qwen2VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    images = Qwen2VLImageProcessorPil(
        min_pixels=56 * 56, max_pixels=112 * 112, patch_size=14, merge_size=2
    )
    return Qwen2VLProcessor(image_processor=images, tokenizer=tokenizer)


def _qwen_vl_encoder(tokenizer):
    """A Qwen2.5-VL model at a toy width: two text layers, a two-block vision tower."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in QWEN_MARKERS}
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
            "rope_theta": 1000000.0,
        },
        vision_config={
            "depth": 2,
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_heads": 2,
            "out_hidden_size": 16,
            "fullatt_block_indexes": [1],
        },
        vocab_size=len(tokenizer),
        hidden_size=16,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    return Qwen2_5_VLForConditionalGeneration(config)


def write_tiny_qwen_image_edit_model(
    folder: str | Path, *, seed: int = 0, plus: bool = False
) -> Path:
    """Create the tiny Qwen-Image-Edit pipeline in ``folder`` (safetensors) and return it;
    ``plus``: saved as Qwen-Image-Edit-2509 is (``QwenImageEditPlusPipeline``, several
    pictures)."""
    import torch
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImageEditPipeline,
        QwenImageEditPlusPipeline,
        QwenImageTransformer2DModel,
    )

    folder = Path(folder)
    torch.manual_seed(seed)
    tokenizer = _qwen_vl_tokenizer()
    latent = 16
    pipeline = QwenImageEditPlusPipeline if plus else QwenImageEditPipeline
    pipe = pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(
            shift=1.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=0.9
        ),
        vae=AutoencoderKLQwenImage(
            base_dim=8,
            z_dim=latent,
            dim_mult=[1, 2, 2, 2],
            num_res_blocks=1,
            temperal_downsample=[False, True, True],
            latents_mean=[0.0] * latent,
            latents_std=[1.0] * latent,
        ),
        text_encoder=_qwen_vl_encoder(tokenizer),
        tokenizer=tokenizer,
        processor=_qwen_vl_processor(tokenizer),
        transformer=QwenImageTransformer2DModel(
            patch_size=2,
            in_channels=latent * 4,
            out_channels=latent,
            num_layers=1,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=16,  # the text encoder's width
            guidance_embeds=False,
            axes_dims_rope=(8, 4, 4),
        ),
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def write_tiny_flux_kontext_model(folder: str | Path, *, seed: int = 0) -> Path:
    """Create the tiny FLUX.1 Kontext pipeline in ``folder`` (safetensors) and return it."""
    import torch
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        FluxKontextPipeline,
        FluxTransformer2DModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = Path(folder)
    torch.manual_seed(seed)
    text = {**TINY_TEXT, "projection_dim": 32, "hidden_act": "gelu"}
    pipe = FluxKontextPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True),
        vae=_tiny_vae16(shift_factor=0.1159, scaling_factor=0.3611),  # the FLUX VAE's
        text_encoder=CLIPTextModel(CLIPTextConfig(**text)),
        tokenizer=_tokenizer(text["max_position_embeddings"]),
        text_encoder_2=_tiny_t5(),
        tokenizer_2=_t5_tokenizer(),
        transformer=FluxTransformer2DModel(
            patch_size=1,
            in_channels=64,
            out_channels=64,
            num_layers=1,
            num_single_layers=1,
            joint_attention_dim=32,
            pooled_projection_dim=32,
            guidance_embeds=True,  # distilled guidance, as FLUX.1 [dev]
            attention_head_dim=16,
            num_attention_heads=2,
            axes_dims_rope=(4, 6, 6),
        ),
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder
