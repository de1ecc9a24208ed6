"""A tiny random IP-Adapter for a tiny model, in h94/IP-Adapter's layout: a folder with the
adapter's ``.safetensors`` (``image_proj.*`` and ``ip_adapter.<n>.to_k_ip / to_v_ip`` for each
cross-attention layer of the UNet) and its CLIP image encoder in ``image_encoder/``. The same
arithmetic as a real one, random weights (the tests: it changes the picture, scale 0 does not)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

#: The image embedding's width (a real ViT-H encoder: 1024).
EMBED = 16


def _hidden_size(name: str, channels: list[int]) -> int:
    """The width of the attention layer ``name`` (as diffusers counts it for IP-Adapters)."""
    if name.startswith("mid_block"):
        return channels[-1]
    if name.startswith("up_blocks"):
        return list(reversed(channels))[int(name[len("up_blocks.")])]
    return channels[int(name[len("down_blocks.")])]


def write_tiny_ip_adapter(model: Path, target: Path, *, seed: int = 0) -> Path:
    """An IP-Adapter folder for the tiny model in ``model`` (its UNet's attention layout)."""
    unet = UNet2DConditionModel.from_config(
        json.loads((Path(model) / "unet" / "config.json").read_text())
    )
    cross = unet.config.cross_attention_dim
    channels = list(unet.config.block_out_channels)
    generator = torch.Generator().manual_seed(seed)

    def random(*shape: int, scale: float = 0.5) -> torch.Tensor:
        return torch.randn(*shape, generator=generator) * scale

    tensors = {
        "image_proj.proj.weight": random(cross * 4, EMBED),
        "image_proj.proj.bias": random(cross * 4, scale=0.1),
        "image_proj.norm.weight": torch.ones(cross),
        "image_proj.norm.bias": torch.zeros(cross),
    }
    key = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        hidden = _hidden_size(name, channels)
        tensors[f"ip_adapter.{key}.to_k_ip.weight"] = random(hidden, cross)
        tensors[f"ip_adapter.{key}.to_v_ip.weight"] = random(hidden, cross)
        key += 2
    target.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(target / "ip-adapter.safetensors"))
    torch.manual_seed(seed)
    encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=37,
            projection_dim=EMBED,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
        )
    )
    encoder.save_pretrained(target / "image_encoder", safe_serialization=True)
    return target
