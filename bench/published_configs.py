"""The published architectures of the families the GPU kit times, as folders of configuration
files (no weights) that ``bench/gpu_kit.py`` builds random weights from.

SD 1.5 and SDXL are the configurations DreamLayer ships (``inpainting/engine/pipeline_configs``,
written by ``scripts/pipeline_configs.py``). The flow-matching families start from their tiny
test folders (``inpainting/testing/tiny_flow.py``: the same classes, tokenizers and processor
files) with each part's published sizes written over the tiny ones:

- a diffusers part (transformer, VAE) is its class with the published values below and the
  class's own defaults for the rest (diffusers' defaults are the published model's: FLUX.1
  [dev], FLUX.2 [dev]'s VAE, Qwen-Image);
- a transformers part (text encoder) keeps the tiny configuration's token ids (the tiny
  tokenizers' special tokens) with the published sizes merged over it.

The tokenizers stay the tiny ones, except CLIP's (the shipped one): the pipelines pad T5 to
512 tokens whatever the tokenizer; the Qwen tokenizers spell a prompt in more tokens than the
real ones (a few dozen more, beside 4,096 picture tokens). ``tests/test_gpu_kit.py`` counts
each built part's parameters on the meta device against the published counts.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from inpainting.engine.families import FAMILIES, index_file

SHIPPED = Path(__file__).resolve().parent.parent / "inpainting" / "engine" / "pipeline_configs"

#: OpenAI CLIP ViT-L/14's text tower (SD 1.5's encoder; FLUX.1's pooled prompt).
CLIP_L = json.loads((SHIPPED / "sd15" / "text_encoder" / "config.json").read_text())
#: google/t5-v1_1-xxl's encoder (FLUX.1's prompt).
T5_XXL = {
    "d_model": 4096,
    "d_ff": 10240,
    "d_kv": 64,
    "num_heads": 64,
    "num_layers": 24,
    "vocab_size": 32128,
    "feed_forward_proj": "gated-gelu",
    "is_gated_act": True,  # what "gated-gelu" means; written, as a saved tiny config has False
    "dense_act_fn": "gelu_new",
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "layer_norm_epsilon": 1e-06,
}
#: The FLUX.1 VAE (16 latent channels, no quant convolutions).
FLUX_VAE = {
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "latent_channels": 16,
    "norm_num_groups": 32,
    "sample_size": 1024,
    "scaling_factor": 0.3611,
    "shift_factor": 0.1159,
    "use_quant_conv": False,
    "use_post_quant_conv": False,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}
#: Qwen/Qwen3-4B (FLUX.2 [klein] 4B's prompt: three of its layers' hidden states).
QWEN3_4B = {
    "hidden_size": 2560,
    "intermediate_size": 9728,
    "num_hidden_layers": 36,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "vocab_size": 151936,
    "max_position_embeddings": 40960,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-06,
    "tie_word_embeddings": True,
}
#: Qwen/Qwen2.5-VL-7B-Instruct (Qwen-Image-Edit's prompt and picture reading).
QWEN25_VL_7B = {
    "vocab_size": 152064,
    "text_config": {
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "vocab_size": 152064,
        "max_position_embeddings": 128000,
        "rms_norm_eps": 1e-06,
        "rope_scaling": {"mrope_section": [16, 24, 24], "rope_type": "default"},
    },
    "vision_config": {
        "depth": 32,
        "hidden_size": 1280,
        "intermediate_size": 3420,
        "num_heads": 16,
        "out_hidden_size": 3584,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 112,
        "fullatt_block_indexes": [7, 15, 23, 31],
    },
}
#: Qwen/Qwen3-VL-4B-Instruct (Bria FIBO 2.0's prompt and picture reading: three stacked hidden
#: states of 2560) and Qwen/Qwen3-VL-8B-Instruct (Qwen-Image-2.1's: 4096 wide).
QWEN3_VL_4B = {
    "text_config": {  # Qwen3-4B's language model, with Qwen3-VL's positions
        **QWEN3_4B,
        "max_position_embeddings": 262144,
        "rope_theta": 5000000.0,
        "rope_scaling": {
            "mrope_section": [24, 20, 20],
            "rope_type": "default",
            "mrope_interleaved": True,
        },
    },
    "vision_config": {
        "depth": 24,
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_heads": 16,
        "out_hidden_size": 2560,
        "deepstack_visual_indexes": [5, 11, 17],
        "num_position_embeddings": 2304,
    },
    "tie_word_embeddings": True,
}
QWEN3_VL_8B = {
    "text_config": {
        **QWEN3_VL_4B["text_config"],
        "hidden_size": 4096,
        "intermediate_size": 12288,
        "tie_word_embeddings": False,
    },
    "vision_config": {
        **QWEN3_VL_4B["vision_config"],
        "depth": 27,
        "hidden_size": 1152,
        "intermediate_size": 4304,
        "out_hidden_size": 4096,
        "deepstack_visual_indexes": [8, 16, 24],
    },
    "tie_word_embeddings": False,
}

#: Per family: the shipped folder (SD), or each part's published values over the tiny folder.
PUBLISHED: dict[str, str | dict[str, dict[str, Any]]] = {
    "sd15": "sd15-inpainting",
    "sdxl": "sdxl-inpainting",
    "flux": {  # FLUX.1 Fill [dev]: 384 input channels (noise, picture, mask), distilled guidance
        "transformer": {"in_channels": 384, "out_channels": 64, "guidance_embeds": True},
        "vae": FLUX_VAE,
        "text_encoder": CLIP_L,
        "text_encoder_2": T5_XXL,
    },
    "flux-kontext": {  # FLUX.1 Kontext [dev]: FLUX.1's transformer, the picture as more tokens
        "transformer": {"guidance_embeds": True},
        "vae": FLUX_VAE,
        "text_encoder": CLIP_L,
        "text_encoder_2": T5_XXL,
    },
    "flux2-klein": {  # FLUX.2 [klein] 4B: 5 double and 20 single blocks, 3072 wide
        "transformer": {
            "num_layers": 5,
            "num_single_layers": 20,
            "num_attention_heads": 24,
            "attention_head_dim": 128,
            "joint_attention_dim": 7680,  # three stacked Qwen3-4B hidden states of 2560
            "guidance_embeds": False,
        },
        "vae": {},  # AutoencoderKLFlux2's defaults
        "text_encoder": QWEN3_4B,
    },
    "qwen-edit": {  # Qwen-Image-Edit: the 20B Qwen-Image MMDiT and Qwen2.5-VL 7B
        "transformer": {},  # QwenImageTransformer2DModel's defaults
        "vae": {},  # AutoencoderKLQwenImage's defaults
        "text_encoder": QWEN25_VL_7B,
    },
    "fibo2": {  # Bria FIBO 2.0: an 8.1B transformer with its perceiver, Qwen3-VL 4B
        "transformer": {},  # BriaFibo2Transformer2DModel's defaults
        "vae": {},  # AutoencoderKLFlux2's defaults
        "text_encoder": QWEN3_VL_4B,
    },
    "flux3-klein": {  # FLUX.3 [klein]: a 5.5B transformer (a flow map: distilled), Qwen3-VL 4B
        "transformer": {"flow_map": True},  # Flux3Transformer2DModel's defaults otherwise
        "vae": {},  # AutoencoderKLFlux2's defaults
        "text_encoder": QWEN3_VL_4B,
    },
    "qwen-image-21": {  # Qwen-Image-2.1: a 7.1B block-causal transformer, Qwen3-VL 8B
        "transformer": {},  # QwenImage21Transformer2DModel's defaults
        "vae": {},  # AutoencoderKLQwenImage21's defaults (RGBA, 64 channels)
        "text_encoder": QWEN3_VL_8B,
    },
}


def _merged(base: dict, over: dict) -> dict:
    merged = dict(base)
    for key, value in over.items():
        merged[key] = (
            _merged(base[key], value)
            if isinstance(value, dict) and isinstance(base.get(key), dict)
            else value
        )
    return merged


def write_published(family: str, tiny: Path, target: Path) -> Path:
    """The folder of ``family``'s published configuration in ``target`` (no weights), from the
    shipped SD folders or from ``tiny`` (the family's tiny test folder) with the published
    sizes written over it."""
    published = PUBLISHED[family]
    if isinstance(published, str):
        shutil.copytree(SHIPPED / published, target, symlinks=False)
        return _identifiable(target, family)
    shutil.copytree(tiny, target, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    index = json.loads(index_file(target).read_text())
    for part, values in published.items():
        config_path = target / part / "config.json"
        config = json.loads(config_path.read_text())
        if index[part][0] == "diffusers":
            keep = {k: v for k, v in config.items() if k.startswith("_")}
            config = {**keep, **values}
        else:
            config = _merged(config, values)
            for section in (config, config.get("text_config") or {}):
                section.pop("layer_types", None)  # the tiny depth's; rebuilt for the real one
        config_path.write_text(json.dumps(config, indent=2))
    if "text_encoder" in published and published["text_encoder"] is CLIP_L:
        shutil.rmtree(target / "tokenizer")
        shutil.copytree(SHIPPED / "sd15" / "tokenizer", target / "tokenizer")
    return _identifiable(target, family)


def _identifiable(target: Path, family: str) -> Path:
    """An empty weights file (no tensors) in the denoiser's folder: the probe identifies a
    folder only with its denoiser's ``.safetensors`` there (pickles are refused), and the kit
    adopts a pipeline built in memory under this folder's name; nothing is loaded from it."""
    denoiser = target / FAMILIES[family].denoiser
    save_file({}, str(denoiser / "diffusion_pytorch_model.safetensors"))
    return target
