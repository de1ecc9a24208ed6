"""Write tiny, randomly initialised pipelines of the flow-matching families to a folder, made
offline: their real layouts at a toy width. FLUX.1 Fill's transformer takes what the real one
takes (``img_in`` of 384 channels: 64 packed latent, 64 packed masked-image latent, 256
packed 8x8 mask); FLUX.1 Kontext's takes 64 (the picture's latents come as more tokens); SD
3's is an MMDiT with three text encoders; Z-Image's a single-stream transformer with a Qwen3
text encoder. All sit on a 16-channel VAE with 8 px per latent (four blocks), with tiny CLIP,
T5 and Qwen3 encoders and their tokenizers generated here. The output is noise; the
arithmetic, the packing and the loading code are the real ones."""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path

from .random_weights import random_fp16
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


#: FLUX.1's transformer width (24 heads of 128), as Black Forest Labs' single-file layout needs
#: it (diffusers' conversion of that layout assumes it); the tiny pipelines are narrower.
FLUX_WIDTH = dict(attention_head_dim=128, num_attention_heads=24, axes_dims_rope=(16, 56, 56))


def write_tiny_flux_fill_model(
    folder: str | Path, *, seed: int = 0, flux_width: bool = False
) -> Path:
    """Create the tiny FLUX.1 Fill pipeline in ``folder`` (safetensors) and return it;
    ``flux_width``: with FLUX.1's transformer width (one double and one single block, 532 M
    parameters, stored in fp16), for the single-file layout."""
    return _write_tiny_flux(folder, "FluxFillPipeline", 384, seed=seed, flux_width=flux_width)


def write_tiny_flux_kontext_model(folder: str | Path, *, seed: int = 0) -> Path:
    """Create the tiny FLUX.1 Kontext pipeline in ``folder`` (safetensors) and return it: the
    FLUX.1 transformer with 64 input channels (the picture's packed latents travel beside the
    noise as more tokens), saved as ``FluxKontextPipeline``."""
    return _write_tiny_flux(folder, "FluxKontextPipeline", 64, seed=seed)


def _write_tiny_flux(
    folder: str | Path, pipeline: str, in_channels: int, *, seed: int, flux_width: bool = False
) -> Path:
    """A tiny FLUX.1 pipeline of class ``pipeline`` whose transformer takes ``in_channels``."""
    import diffusers
    import torch
    from accelerate import init_empty_weights
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = Path(folder)
    torch.manual_seed(seed)
    width = (
        FLUX_WIDTH
        if flux_width
        else dict(attention_head_dim=16, num_attention_heads=2, axes_dims_rope=(4, 6, 6))
    )
    with init_empty_weights() if flux_width else nullcontext():
        transformer = FluxTransformer2DModel(
            patch_size=1,
            in_channels=in_channels,
            out_channels=64,
            num_layers=1,
            num_single_layers=1,
            joint_attention_dim=32,
            pooled_projection_dim=32,
            guidance_embeds=True,  # FLUX.1 [dev], Fill and Kontext: distilled guidance
            **width,
        )
    if flux_width:
        transformer = random_fp16(transformer, seed)
    vae = _tiny_vae16(shift_factor=0.1159, scaling_factor=0.3611)  # the FLUX VAE's
    text = {**TINY_TEXT, "projection_dim": 32, "hidden_act": "gelu"}
    pipe = getattr(diffusers, pipeline)(
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


def _qwen_tokenizer():
    """A byte-level BPE tokenizer with Qwen's chat markers and a chat template (Z-Image reads
    the prompt as a user message)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {char: i for i, char in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    for special in ("<|im_start|>", "<|im_end|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
        chat_template=template,
        model_max_length=512,
    )


def write_tiny_zimage_model(folder: str | Path, *, seed: int = 0) -> Path:
    """A tiny Z-Image pipeline in ``folder``: its single-stream transformer (context and noise
    refiners, 2x2 patches) on a 16-channel VAE, a tiny Qwen3 text encoder and a byte-level
    tokenizer with a chat template, flow-matching Euler."""
    import torch
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        ZImageInpaintPipeline,
        ZImageTransformer2DModel,
    )
    from transformers import Qwen3Config, Qwen3Model

    folder = Path(folder)
    torch.manual_seed(seed)
    tokenizer = _qwen_tokenizer()
    text_encoder = Qwen3Model(
        Qwen3Config(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=8,
            max_position_embeddings=1024,
        )
    )
    transformer = ZImageTransformer2DModel(
        all_patch_size=(2,),
        all_f_patch_size=(1,),
        in_channels=16,
        dim=32,
        n_layers=1,
        n_refiner_layers=1,
        n_heads=2,
        n_kv_heads=2,
        cap_feat_dim=32,  # the text encoder's width
        axes_dims=[4, 6, 6],
        axes_lens=[1024, 64, 64],
    )
    pipe = ZImageInpaintPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_tiny_vae16(shift_factor=0.1159, scaling_factor=0.3611),  # the FLUX VAE's
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


#: Qwen2.5-VL's markers for a picture in the prompt, which the edit pipelines write.
_VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")


def _qwen_vl_tokenizer():
    """A byte-level BPE tokenizer with Qwen2.5-VL's chat and picture markers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {char: i for i, char in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    specials = ("<|im_start|>", "<|im_end|>", "<|endoftext|>", *_VISION_TOKENS)
    for special in specials:
        vocab[special] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", *_VISION_TOKENS],
        model_max_length=32768,
    )


#: Qwen2-VL's picture preprocessing as Qwen publish it (``processor/preprocessor_config.json``).
_PREPROCESSOR = {
    "image_processor_type": "Qwen2VLImageProcessor",
    "processor_class": "Qwen2_5_VLProcessor",
    "do_resize": True,
    "do_rescale": True,
    "do_normalize": True,
    "do_convert_rgb": True,
    "rescale_factor": 1 / 255,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "min_pixels": 3136,
    "max_pixels": 12845056,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
}


def write_tiny_qwen_layered_model(folder: str | Path, *, seed: int = 0) -> Path:
    """A tiny Qwen-Image-Layered pipeline in ``folder`` (Qwen's layout, as
    ``write_tiny_qwen_edit_model``): its transformer with the layers' 3D rope and the RGB
    condition, its VAE of four channels (RGBA)."""
    return write_tiny_qwen_edit_model(folder, seed=seed, layered=True)


def write_tiny_qwen_edit_model(
    folder: str | Path, *, plus: bool = False, seed: int = 0, layered: bool = False
) -> Path:
    """Create a tiny Qwen-Image-Edit pipeline in ``folder`` in Qwen's layout and return it:
    the Qwen-Image MMDiT (64 input channels: 16 latent channels in 2x2 patches; the picture's
    latents travel as more tokens), the Qwen-Image VAE (16 channels, 8 px per latent), a
    Qwen2.5-VL text encoder with its vision tower, its tokenizer and ``processor/`` (the
    tokenizer and Qwen2-VL's picture preprocessing). ``plus``: the Plus release's pipeline
    class (2509: the picture and up to two references)."""

    import diffusers
    import torch
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImageTransformer2DModel,
    )
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    folder = Path(folder)
    torch.manual_seed(seed)
    tokenizer = _qwen_vl_tokenizer()
    text_encoder = Qwen2_5_VLForConditionalGeneration(
        Qwen2_5_VLConfig(
            text_config=_tiny_vl_text(
                tokenizer,
                num_hidden_layers=1,
                rope_scaling={"mrope_section": [1, 1, 2], "rope_type": "default"},
                rope_theta=1000000.0,
            ),
            vision_config={
                "depth": 1,
                "hidden_size": 16,
                "intermediate_size": 16,
                "num_heads": 2,
                "out_hidden_size": 16,
                "fullatt_block_indexes": [0],
            },
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **_vision_token_ids(tokenizer),
        )
    )
    transformer = QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=64,
        out_channels=16,
        num_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=16,
        guidance_embeds=False,
        axes_dims_rope=(4, 6, 6),
        **({"use_layer3d_rope": True, "use_additional_t_cond": True} if layered else {}),
    )
    vae = AutoencoderKLQwenImage(
        # The layered pipeline decodes every layer at 640 px (its smallest working size): a
        # narrower VAE there keeps a test's split within a few seconds.
        base_dim=4 if layered else 8,
        z_dim=16,
        dim_mult=[1, 1, 1, 1] if layered else [1, 2, 4, 4],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
        latents_mean=[0.0] * 16,
        latents_std=[1.0] * 16,
        input_channels=4 if layered else 3,
    )
    pipeline = "QwenImageEditPlusPipeline" if plus else "QwenImageEditPipeline"
    if layered:
        pipeline = "QwenImageLayeredPipeline"
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    from ..engine.backends.qwen_vl import PictureProcessor  # noqa: PLC0415 - transformers: heavy

    processor = PictureProcessor(
        image_processor=Qwen2VLImageProcessorPil(
            **{k: v for k, v in _PREPROCESSOR.items() if not k.endswith("_type")}
        ),
        tokenizer=tokenizer,
    )
    pipe = getattr(diffusers, pipeline)(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        processor=processor,
        transformer=transformer,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return _processor_as_published(folder, tokenizer, "Qwen2VLProcessor", _PREPROCESSOR)


def write_tiny_flux2_klein_model(
    folder: str | Path, *, distilled: bool = True, seed: int = 0
) -> Path:
    """Create a tiny FLUX.2 [klein] pipeline in ``folder`` (safetensors) and return it: the
    FLUX.2 transformer with 128 input channels (the 32-channel latents patchified 2x2), the
    FLUX.2 VAE (32 channels, 8 px per latent), and a Qwen3 text encoder of 28 layers (the
    pipeline stacks the hidden states of layers 9, 18 and 27, as the real ones have) with a
    chat template. ``distilled``: the released, step-distilled kind (``is_distilled``)."""
    import torch
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        Flux2KleinPipeline,
        Flux2Transformer2DModel,
    )
    from transformers import Qwen3Config, Qwen3ForCausalLM

    folder = Path(folder)
    torch.manual_seed(seed)
    tokenizer = _qwen_tokenizer()
    text_encoder = Qwen3ForCausalLM(
        Qwen3Config(
            vocab_size=len(tokenizer),
            hidden_size=16,
            intermediate_size=16,
            num_hidden_layers=28,
            num_attention_heads=2,
            num_key_value_heads=2,
            head_dim=8,
            max_position_embeddings=1024,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    )
    transformer = Flux2Transformer2DModel(
        patch_size=1,
        in_channels=128,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=48,  # three stacked hidden states of 16
        timestep_guidance_channels=256,
        axes_dims_rope=[4, 4, 4, 4],
        guidance_embeds=False,  # [klein]: no distilled guidance embedding
    )
    vae = _tiny_flux2_vae()
    pipe = Flux2KleinPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
        is_distilled=distilled,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


#: Qwen3-VL's picture preprocessing as Qwen publish it (16 px patches merged 2x2: 32 px a
#: token), bounded here to small pictures.
_QWEN3_PREPROCESSOR = {
    **_PREPROCESSOR,
    "image_processor_type": "Qwen2VLImageProcessorFast",
    "processor_class": "Qwen3VLProcessor",
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "min_pixels": 32 * 32,
    "max_pixels": 256 * 256,
    "patch_size": 16,
}


def write_tiny_fibo2_model(folder: str | Path, *, seed: int = 0) -> Path:
    """Create a tiny Bria FIBO 2.0 pipeline in ``folder`` in its published layout and return
    it: the FIBO 2.0 transformer (32 latent channels in 2x2 patches, a perceiver that squeezes
    the text into gist tokens, five injection layers), the FLUX.2 VAE (32 channels, 8 px per
    latent), a Qwen3-VL text encoder of 36 layers (the pipeline stacks six bundles of three
    hidden states up to layer 35) with its vision tower, and ``processor/`` (the tokenizer and
    Qwen3-VL's picture preprocessing)."""

    import torch
    from diffusers import (
        BriaFibo2Pipeline,
        BriaFibo2Transformer2DModel,
        FlowMatchEulerDiscreteScheduler,
    )

    folder = Path(folder)
    torch.manual_seed(seed)
    tokenizer = _qwen_vl_tokenizer()
    text_encoder = _tiny_qwen3_vl(tokenizer, layers=36)
    transformer = BriaFibo2Transformer2DModel(
        in_channels=32,
        patch_size=2,
        dim=32,
        n_layers=5,
        n_refiner_layers=1,
        n_heads=2,
        cap_feat_dim=48,  # three stacked hidden states of 16
        injection_layer_ids=(0, 1, 2, 3, 4),
        perceiver_num_layers=1,
        min_num_gist_tokens=4,
        max_num_gist_tokens=8,
        gist_step=4,
        gist_min_text_len=8,
        gist_max_text_len=64,
        axes_dims=(4, 6, 6),
        axes_lens=(2048, 512, 512),  # as published: positions of several pictures
    )
    pipe = BriaFibo2Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True),
        vae=_tiny_flux2_vae(),
        text_encoder=text_encoder,
        processor=_qwen3_processor(tokenizer),
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return _processor_as_published(folder, tokenizer, "Qwen3VLProcessor", _QWEN3_PREPROCESSOR)


#: Qwen3-VL's chat template, short: a message's content as words or a list of parts (words
#: and pictures), as Qwen-Image-2.1's pipeline writes its system message.
_QWEN3_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'text' %}{{ c['text'] }}"
    "{% else %}<|vision_start|><|image_pad|><|vision_end|>{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def write_tiny_qwen_image21_model(folder: str | Path, *, seed: int = 0) -> Path:
    """Create a tiny Qwen-Image-2.1 pipeline in ``folder`` in its published layout and return
    it: the single-stream, block-causal QwenImage 2.1 transformer (latents unpatched, one token
    per latent), its VAE (RGBA in and out, 64 latent channels, 16 px per latent), a Qwen3-VL
    text encoder with its vision tower, and ``processor/`` (the tokenizer, Qwen3-VL's picture
    preprocessing and its chat template)."""
    import torch
    from diffusers import (
        AutoencoderKLQwenImage21,
        FlowMatchEulerDiscreteScheduler,
        QwenImage21Pipeline,
        QwenImage21Transformer2DModel,
    )

    folder = Path(folder)
    torch.manual_seed(seed)
    tokenizer = _qwen_vl_tokenizer()
    pipe = QwenImage21Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True),
        vae=AutoencoderKLQwenImage21(
            base_dim=8,
            decoder_base_dim=8,
            z_dim=64,  # as published: the transformer's 64 input channels tell the family
            dim_mult=[1, 1, 1, 1, 1],  # four halvings: 16 px per latent, as published
            num_res_blocks=1,
            latents_mean=[0.0] * 64,
            latents_std=[1.0] * 64,
        ),
        text_encoder=_tiny_qwen3_vl(tokenizer, layers=2),
        processor=_qwen3_processor(tokenizer, chat_template=_QWEN3_CHAT_TEMPLATE),
        transformer=QwenImage21Transformer2DModel(
            in_channels=64,
            out_channels=64,
            num_layers=2,
            attention_head_dim=16,
            num_attention_heads=2,
            context_in_dim=16,  # the text encoder's width
            axes_dims_rope=(4, 6, 6),
        ),
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    _processor_as_published(folder, tokenizer, "Qwen3VLProcessor", _QWEN3_PREPROCESSOR)
    chat_template = {"chat_template": _QWEN3_CHAT_TEMPLATE}  # as Qwen publish Qwen3-VL's
    (folder / "processor" / "chat_template.json").write_text(json.dumps(chat_template))
    return folder


#: A tiny Qwen3-VL or Qwen3.5 vision tower: 16 px patches merged 2x2 (one token per 32 px).
_TINY_VISION = {
    "depth": 1,
    "hidden_size": 16,
    "intermediate_size": 16,
    "num_heads": 2,
    "out_hidden_size": 16,
    "patch_size": 16,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "num_position_embeddings": 64,
}


def _tiny_qwen3_vl(tokenizer, *, layers: int):
    """A tiny Qwen3-VL (16 wide, interleaved multimodal rope) with its vision tower (16 px
    patches merged 2x2: one token per 32 px)."""
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    return Qwen3VLForConditionalGeneration(
        Qwen3VLConfig(
            text_config=_tiny_vl_text(
                tokenizer,
                num_hidden_layers=layers,
                head_dim=8,
                rope_scaling={
                    "mrope_section": [1, 1, 2],
                    "rope_type": "default",
                    "mrope_interleaved": True,
                },
                rope_theta=5000000.0,
            ),
            vision_config={**_TINY_VISION, "deepstack_visual_indexes": [0]},
            **_vision_token_ids(tokenizer),
        )
    )


def _qwen3_processor(tokenizer, chat_template: str | None = None):
    """Qwen3-VL's processor of pictures and words for ``tokenizer`` (built without
    torchvision, as the backend builds it)."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    from ..engine.backends.qwen_vl import Qwen3PictureProcessor  # noqa: PLC0415 - heavy

    settings = {k: v for k, v in _QWEN3_PREPROCESSOR.items() if not k.endswith(("_type", "_class"))}
    return Qwen3PictureProcessor(
        image_processor=Qwen2VLImageProcessorPil(**settings),
        tokenizer=tokenizer,
        chat_template=chat_template,
    )


def _tiny_flux2_vae():
    """The FLUX.2 VAE, tiny: 32 latent channels, 8 px per latent."""
    from diffusers import AutoencoderKLFlux2

    return AutoencoderKLFlux2(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=1,
        latent_channels=32,
        norm_num_groups=4,
        sample_size=64,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )


def _processor_as_published(folder: Path, tokenizer, processor: str, preprocessor: dict) -> Path:
    """The saved pipeline in ``folder`` in Qwen's layout: ``model_index.json`` names
    transformers' ``processor`` class; ``processor/`` holds the tokenizer and the picture
    preprocessing as Qwen publish them."""
    index = json.loads((folder / "model_index.json").read_text())
    index["processor"] = ["transformers", processor]
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    processor_folder = folder / "processor"
    for stale in processor_folder.glob("*"):
        stale.unlink()
    tokenizer.save_pretrained(processor_folder)
    (processor_folder / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2))
    return folder


def _tiny_vl_text(tokenizer, **config) -> dict:
    """A tiny Qwen-VL text model's configuration (16 wide, two heads) for ``tokenizer``, with
    ``config`` (its layers, its rope) on top."""
    return {
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        **config,
    }


def _vision_token_ids(tokenizer) -> dict:
    """A Qwen-VL configuration's picture and video marker ids, by ``tokenizer``'s."""
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in _VISION_TOKENS}
    return {
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
    }


#: Where FLUX.3 [klein]'s published ``modular_model_index.json`` says its parts are: its own
#: repository, and the prompt upsampler's (published apart).
FLUX3_REPOS = {
    True: "black-forest-labs/flux-3-image-klein",
    False: "black-forest-labs/flux-3-image-klein-base",
}
FLUX3_UPSAMPLER_REPO = "black-forest-labs/flux-3-image-klein-pup"


def write_tiny_flux3_klein_model(
    folder: str | Path, *, distilled: bool = True, seed: int = 0
) -> Path:
    """Create a tiny FLUX.3 [klein] model in ``folder`` in its published layout and return
    it: ``modular_model_index.json`` (the modular pipeline and its blocks, each part by its
    Hub repository and subfolder, the prompt upsampler by its own repository), the FLUX.3
    transformer (128 input channels: the 32-channel latents patchified 2x2; the distilled one
    a flow map), the FLUX.2 VAE, a Qwen3-VL text encoder of 32 layers (the pipeline stacks the
    hidden states of layers 4 to 32) and ``tokenizer/`` (Qwen3-VL's processor with its chat
    template). ``distilled``: the released, step-distilled kind; else the base one."""
    import torch
    from diffusers import Flux3Transformer2DModel

    folder = Path(folder)
    torch.manual_seed(seed)
    tokenizer = _qwen_vl_tokenizer()
    parts = {
        "text_encoder": _tiny_qwen3_vl(tokenizer, layers=32),
        "transformer": Flux3Transformer2DModel(
            in_channels=128,
            cond_in_channels=128,
            num_layers=1,
            num_single_layers=1,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=128,  # eight stacked hidden states of 16
            axes_dims_rope=(4, 4, 4, 4),
            flow_map=distilled,
        ),
        "vae": _tiny_flux2_vae(),
    }
    for name, part in parts.items():
        part.save_pretrained(folder / name, safe_serialization=True)
    tokenizer.save_pretrained(folder / "tokenizer")
    preprocessor = json.dumps(_QWEN3_PREPROCESSOR, indent=2)
    (folder / "tokenizer" / "preprocessor_config.json").write_text(preprocessor)
    (folder / "tokenizer" / "chat_template.jinja").write_text(_QWEN3_CHAT_TEMPLATE)
    repo = FLUX3_REPOS[distilled]
    kind = "Flux3Distilled" if distilled else "Flux3"

    def spec(library: str, name: str, hint: str, source: str, sub: str = "") -> list:
        where = {"pretrained_model_name_or_path": source, "revision": None, "subfolder": sub}
        return [library, name, {**where, "type_hint": hint.split(":"), "variant": None}]

    processor = ("transformers", "Qwen3VLProcessor", "transformers:AutoProcessor")

    index = {
        "_blocks_class_name": f"{kind}AutoBlocks",
        "_class_name": f"{kind}ModularPipeline",
        "_diffusers_version": "0.42.1",
        "prompt_upsampler": spec(
            "transformers",
            "Qwen3_5ForConditionalGeneration",
            "transformers:Qwen3_5ForConditionalGeneration",
            FLUX3_UPSAMPLER_REPO,
        ),
        "prompt_upsampler_processor": spec(*processor, FLUX3_UPSAMPLER_REPO),
        "text_encoder": spec(
            "transformers",
            "Qwen3VLForConditionalGeneration",
            "transformers:Qwen3VLForConditionalGeneration",
            repo,
            "text_encoder",
        ),
        "tokenizer": spec(*processor, repo, "tokenizer"),
        "transformer": spec(
            "diffusers",
            "Flux3Transformer2DModel",
            "diffusers:Flux3Transformer2DModel",
            repo,
            "transformer",
        ),
        "vae": spec("diffusers", "AutoencoderKLFlux2", "diffusers:AutoencoderKLFlux2", repo, "vae"),
    }
    (folder / "modular_model_index.json").write_text(json.dumps(index, indent=2))
    return folder


def write_tiny_flux3_upsampler(folder: str | Path, *, seed: int = 0) -> Path:
    """Put a tiny FLUX.3 prompt upsampler into the FLUX.3 [klein] ``folder`` as a user copies
    the published one in (``prompt_upsampler/``: a Qwen3.5 with its vision tower, its
    tokenizer, Qwen3-VL's picture preprocessing and a chat template) and return the folder."""
    import torch
    from transformers import Qwen3_5Config, Qwen3_5ForConditionalGeneration

    folder = Path(folder)
    torch.manual_seed(seed)
    tokenizer = _qwen_vl_tokenizer()
    model = Qwen3_5ForConditionalGeneration(
        Qwen3_5Config(
            text_config=_tiny_vl_text(
                tokenizer,
                num_hidden_layers=2,
                layer_types=["linear_attention", "full_attention"],
                head_dim=8,
                linear_key_head_dim=8,
                linear_value_head_dim=8,
                linear_num_key_heads=2,
                linear_num_value_heads=2,
                rope_parameters={
                    "rope_type": "default",
                    "rope_theta": 10000.0,
                    "partial_rotary_factor": 0.5,
                    "mrope_section": [1, 1, 0],
                    "mrope_interleaved": True,
                },
            ),
            vision_config=_TINY_VISION,
            **_vision_token_ids(tokenizer),
        )
    )
    part = folder / "prompt_upsampler"
    model.save_pretrained(part, safe_serialization=True)
    tokenizer.save_pretrained(part)
    (part / "preprocessor_config.json").write_text(json.dumps(_QWEN3_PREPROCESSOR, indent=2))
    (part / "chat_template.jinja").write_text(_QWEN3_CHAT_TEMPLATE)
    return folder
