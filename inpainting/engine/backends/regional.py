"""A layered job's regions painted in one pipeline call (issue 80, ``BackendCall.regions``):
the whole picture's prompt and each region's are encoded on their own and laid side by side
along the token axis (segment 0 the whole picture's, segment i region i's), and every
cross-attention of the denoiser gets an additive bias that lets a latent pixel see only its
own segment's tokens: a pixel of region i region i's, a pixel outside every region the whole
picture's. Self-attention is left as it was. On FLUX (text and picture tokens in one attention)
the same rule is one additive mask over all the tokens (``joint_bias``), passed to the pipeline.

At each attention's resolution a pixel belongs to the segment that covers most of it (the
region masks brought down by area). Imported only where a diffusion model runs (torch)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

#: What a pixel's score for a token outside its segment gets: nothing of it is seen.
BLOCKED = float("-inf")


def coverage(masks: list[Image.Image]) -> torch.Tensor:
    """[1 + regions, H, W], 0 to 1: how much of each pixel each segment covers, the whole
    picture's prompt first (what no region covers)."""
    regions = torch.from_numpy(np.stack([np.asarray(m, np.float32) / 255.0 for m in masks]))
    rest = (1.0 - regions.sum(dim=0)).clamp(min=0.0)
    return torch.cat([rest[None], regions])


def segment_labels(shares: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The segment of each pixel of a ``height`` x ``width`` grid over the picture, flattened
    row by row: the one covering most of it (``shares`` from ``coverage``; a tie goes to the
    lower segment, the whole picture's first)."""
    pooled = F.interpolate(shares[None], size=(height, width), mode="area")[0]
    return pooled.argmax(dim=0).flatten()


def token_segments(lengths: list[int]) -> torch.Tensor:
    """The segment of each token of the joined prompts (``lengths``: each segment's tokens)."""
    return torch.cat([torch.full((n,), i) for i, n in enumerate(lengths)])


class RegionPlan:
    """Where each segment's tokens lie (``lengths``, the whole picture's first) and each
    region's mask at the call's size (``masks``), for a latent of ``latent_size`` (h, w).
    ``biases`` keeps each bias built, by the number of queries it is for."""

    def __init__(self, masks: list[Image.Image], lengths: list[int], latent_size: tuple[int, int]):
        if len(lengths) != len(masks) + 1:
            raise ValueError("one token segment per region, and the whole picture's first")
        self.shares = coverage(masks)
        self.tokens = token_segments(lengths)
        self.latent_size = latent_size
        self.biases: dict[int, torch.Tensor] = {}

    def grid(self, queries: int) -> tuple[int, int]:
        """The (h, w) of an attention over ``queries`` latent pixels: the latent's, halved
        (rounded up, as a stride-2 convolution does) once per level down."""
        height, width = self.latent_size
        for level in range(8):
            h, w = math.ceil(height / 2**level), math.ceil(width / 2**level)
            if h * w == queries:
                return h, w
        raise ValueError(f"no level of a {height}x{width} latent has {queries} pixels")

    def labels(self, queries: int) -> torch.Tensor:
        return segment_labels(self.shares, *self.grid(queries))

    def bias(self, queries: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """[queries, tokens]: 0 where a pixel sees a token, ``BLOCKED`` elsewhere; built once
        a resolution, where the attention runs."""
        if queries not in self.biases:
            seen = self.labels(queries)[:, None] == self.tokens[None, :]
            self.biases[queries] = _additive(seen.to(device), dtype)
        return self.biases[queries].to(device=device, dtype=dtype)  # as it is, where it is


class RegionalAttention:
    """An attention processor: a cross-attention as diffusers' ``AttnProcessor2_0`` computes
    it, with the plan's bias; a self-attention by the processor it replaced (``stock``)."""

    def __init__(self, stock: Any, plan: RegionPlan) -> None:
        self.stock = stock
        self.plan = plan

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor:
        if encoder_hidden_states is None:
            return self.stock(
                attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs
            )
        # The UNet pipelines pass no cross-attention mask: the plan's bias is the only one.
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        four_d = hidden_states.ndim == 4
        if four_d:
            batch, channels, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channels, height * width).transpose(1, 2)
        batch, queries, _ = hidden_states.shape
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query, key, value = (
            t.view(batch, -1, attn.heads, head_dim).transpose(1, 2) for t in (query, key, value)
        )
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        bias = self.plan.bias(queries, query.dtype, query.device)
        hidden_states = F.scaled_dot_product_attention(
            query, key, value, attn_mask=bias[None, None], dropout_p=0.0, is_causal=False
        )
        hidden_states = hidden_states.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim)
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states.to(query.dtype)))
        if four_d:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channels, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


@contextmanager
def regional_attention(unet: Any, plan: RegionPlan) -> Iterator[None]:
    """Every attention of ``unet`` runs through ``RegionalAttention`` with ``plan`` inside the
    block, and through its own processor again after it, whatever happens."""
    stock = {
        module: module.processor
        for module in unet.modules()
        if hasattr(module, "set_processor") and hasattr(module, "processor")
    }
    try:
        for module, processor in stock.items():
            module.set_processor(RegionalAttention(processor, plan))
        yield
    finally:
        for module, processor in stock.items():
            module.set_processor(processor)


def joint_bias(
    plan: RegionPlan, dtype: torch.dtype, device: Any, *, copies: int = 1
) -> torch.Tensor:
    """[1, 1, tokens, tokens]: the additive mask of a joint attention (FLUX's: the text tokens
    first, then the picture's tokens on the grid ``plan.latent_size``, row by row, ``copies``
    times: FLUX.2 [klein]'s inpainting reads the picture again, as a condition, beside the
    noise). A segment's text sees its own text and its region's picture tokens (in every copy);
    a picture token sees every picture token and its segment's text only (outside every
    region, the whole picture's)."""
    picture = segment_labels(plan.shares, *plan.latent_size).repeat(copies)
    labels = torch.cat([plan.tokens, picture]).to(device)
    text = torch.arange(len(labels), device=device) < len(plan.tokens)
    seen = (labels[:, None] == labels[None, :]) | (~text[:, None] & ~text[None, :])
    plan.biases[len(labels)] = _additive(seen, dtype)
    return plan.biases[len(labels)][None, None]


def _additive(seen: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean mask (True: seen) as an attention's additive bias."""
    return torch.zeros(seen.shape, dtype=dtype, device=seen.device).masked_fill_(~seen, BLOCKED)
