"""Write the pipeline configurations that ship with DreamLayer (JSON and tokenizer files, no
weights), so single-file checkpoints load offline: ``inpainting/engine/pipeline_configs/``,
one folder per family (sd15, sd15-inpainting, sdxl, sdxl-inpainting), in the diffusers
folder layout that ``from_single_file(config=...)`` reads.

The numbers are the published architectures' (Stable Diffusion 1.5 and SDXL 1.0; the
inpainting variants differ only in the UNet's 9 input channels). The CLIP tokenizer's
vocabulary and merges are derived from OpenAI's byte-pair table that open-clip-torch ships
(``open_clip/bpe_simple_vocab_16e6.txt.gz``), as CLIP's own tokenizer builds them:

    pip download --no-deps open-clip-torch==3.3.0 -d /tmp/oc
    unzip -o /tmp/oc/open_clip_torch-*.whl open_clip/bpe_simple_vocab_16e6.txt.gz -d /tmp/oc
    python scripts/pipeline_configs.py --bpe /tmp/oc/open_clip/bpe_simple_vocab_16e6.txt.gz

Every family folder links to the one copy of the tokenizer files. ``tests/engine/
test_pipeline_configs.py`` checks the result against published facts (parameter counts,
token ids).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "inpainting" / "engine" / "pipeline_configs"
DIFFUSERS_VERSION = "0.42.1"

SCHEDULE = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "trained_betas": None,
}
SD15_SCHEDULER = {"_class_name": "PNDMScheduler", "skip_prk_steps": True, **SCHEDULE}
SDXL_SCHEDULER = {
    "_class_name": "EulerDiscreteScheduler",
    **SCHEDULE,
    "interpolation_type": "linear",
    "prediction_type": "epsilon",
    "timestep_spacing": "leading",
    "use_karras_sigmas": False,
}

CLIP_L_TEXT = {  # OpenAI CLIP ViT-L/14's text tower: SD 1.5's encoder, SDXL's first
    "architectures": ["CLIPTextModel"],
    "model_type": "clip_text_model",
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-05,
    "projection_dim": 768,
    "attention_dropout": 0.0,
    "dropout": 0.0,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}
BIGG_TEXT = {  # OpenCLIP ViT-bigG/14's text tower with its projection: SDXL's second
    **CLIP_L_TEXT,
    "architectures": ["CLIPTextModelWithProjection"],
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "hidden_act": "gelu",
    "projection_dim": 1280,
}

VAE = {
    "_class_name": "AutoencoderKL",
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
}
SD15_VAE = {**VAE, "sample_size": 512, "scaling_factor": 0.18215}
SDXL_VAE = {**VAE, "sample_size": 1024, "scaling_factor": 0.13025, "force_upcast": True}

SD15_UNET = {
    "_class_name": "UNet2DConditionModel",
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
}
SDXL_UNET = {
    **SD15_UNET,
    "attention_head_dim": [5, 10, 20],
    "block_out_channels": [320, 640, 1280],
    "cross_attention_dim": 2048,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "transformer_layers_per_block": [1, 2, 10],
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
    "sample_size": 128,
}

NONE = [None, None]
SD15_INDEX = {
    "feature_extractor": NONE,
    "image_encoder": NONE,
    "safety_checker": NONE,
    "requires_safety_checker": False,
    "scheduler": ["diffusers", "PNDMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}
SDXL_INDEX = {
    "feature_extractor": NONE,
    "image_encoder": NONE,
    "force_zeros_for_empty_prompt": True,
    "scheduler": ["diffusers", "EulerDiscreteScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "tokenizer_2": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}

TOKENIZER = {
    "tokenizer_class": "CLIPTokenizer",
    "model_max_length": 77,
    "bos_token": "<|startoftext|>",
    "eos_token": "<|endoftext|>",
    "unk_token": "<|endoftext|>",
    "pad_token": "<|endoftext|>",
}
TOKENIZER_2 = {**TOKENIZER, "pad_token": "!"}  # SDXL's OpenCLIP encoder pads with "!"


def bytes_to_unicode() -> dict[int, str]:
    """CLIP's reversible map of the 256 bytes onto printable characters."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    codes, chars, extra = list(printable), list(printable), 0
    for byte in range(256):
        if byte not in codes:
            codes.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(codes, (chr(c) for c in chars), strict=True))


def write_bpe(bpe: Path, folder: Path) -> None:
    """vocab.json and merges.txt as CLIP's tokenizer builds them from the byte-pair table:
    the 256 byte characters, the same with ``</w>``, one token per merge (the first 48,894
    merges), then the start and end tokens: 49,408 tokens."""
    lines = gzip.open(bpe).read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    merges = [tuple(line.split()) for line in lines]
    vocab = list(bytes_to_unicode().values())
    vocab += [token + "</w>" for token in vocab]
    vocab += ["".join(merge) for merge in merges] + ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    table = {token: index for index, token in enumerate(vocab)}
    (folder / "vocab.json").write_text(json.dumps(table, ensure_ascii=False), encoding="utf-8")
    merges_text = "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n"
    (folder / "merges.txt").write_text(merges_text, encoding="utf-8")


def _json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _tokenizer(folder: Path, config: dict) -> None:
    folder.mkdir(parents=True)
    _json(folder / "tokenizer_config.json", config)
    for name in ("vocab.json", "merges.txt"):
        os.symlink(os.path.relpath(OUT / "clip-bpe" / name, folder), folder / name)


def write_family(name: str, pipeline: str, index: dict, parts: dict[str, dict]) -> None:
    folder = OUT / name
    shutil.rmtree(folder, ignore_errors=True)
    _json(
        folder / "model_index.json",
        {"_class_name": pipeline, "_diffusers_version": DIFFUSERS_VERSION, **index},
    )
    for part, config in parts.items():
        if part.startswith("tokenizer"):
            _tokenizer(folder / part, config)
        elif part == "scheduler":
            _json(folder / part / "scheduler_config.json", config)
        else:
            _json(folder / part / "config.json", config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bpe", type=Path, required=True, help="bpe_simple_vocab_16e6.txt.gz")
    args = parser.parse_args()
    write_bpe(args.bpe, OUT / "clip-bpe")
    for inpainting in (False, True):
        suffix, channels = ("-inpainting", 9) if inpainting else ("", 4)
        sd15 = "StableDiffusionInpaintPipeline" if inpainting else "StableDiffusionPipeline"
        write_family(
            "sd15" + suffix,
            sd15,
            SD15_INDEX,
            {
                "scheduler": SD15_SCHEDULER,
                "text_encoder": CLIP_L_TEXT,
                "tokenizer": TOKENIZER,
                "unet": {**SD15_UNET, "in_channels": channels},
                "vae": SD15_VAE,
            },
        )
        sdxl = "StableDiffusionXLInpaintPipeline" if inpainting else "StableDiffusionXLPipeline"
        write_family(
            "sdxl" + suffix,
            sdxl,
            {**SDXL_INDEX, "requires_aesthetics_score": False} if inpainting else SDXL_INDEX,
            {
                "scheduler": SDXL_SCHEDULER,
                "text_encoder": CLIP_L_TEXT,
                "text_encoder_2": BIGG_TEXT,
                "tokenizer": TOKENIZER,
                "tokenizer_2": TOKENIZER_2,
                "unet": {**SDXL_UNET, "in_channels": channels},
                "vae": SDXL_VAE,
            },
        )
    print(f"pipeline configurations written to {OUT}")


if __name__ == "__main__":
    main()
