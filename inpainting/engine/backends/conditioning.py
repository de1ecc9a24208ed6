"""Prompt embeddings for the diffusion pipelines: weighted fragments (``prompts``), prompts
longer than the text encoder's 77 tokens split into chunks instead of cut, and clip skip.
compel does the weighting and the chunking; the prompt syntax is AUTOMATIC1111's, parsed by
``prompts``. Imported only where a diffusion model runs (torch)."""

from __future__ import annotations

from typing import Any

import torch
from compel import Compel
from compel.embeddings_provider import EmbeddingsProvider

from ..prompts import parse_weights, plain_text, split_loras


class _Placed:
    """A text encoder as compel sees it: the module, with the device the pipeline runs it on.
    Under the sequential memory plan a module's weights wait on the meta device until its
    layer runs (accelerate's hooks), so its own ``device`` says ``meta``, and compel, which
    reads it, would put the token ids there and move its results there too."""

    def __init__(self, module: Any, device: torch.device) -> None:
        self.module = module
        self.device = device

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.module, name)


class _LayerProvider(EmbeddingsProvider):
    """compel's provider, taking the embeddings from any layer of the text encoder (clip
    skip), with or without the encoder's final layer norm, on the pipeline's device."""

    def __init__(self, tokenizer, text_encoder, device, *, layer: int, normalized: bool) -> None:
        super().__init__(
            tokenizer=tokenizer,
            text_encoder=_Placed(text_encoder, device),
            truncate=False,
            device=device,
        )
        self.layer = layer
        self.normalized = normalized

    def _encode_token_ids_to_embeddings(self, token_ids, attention_mask=None):
        output = self.text_encoder(
            token_ids, attention_mask, output_hidden_states=True, return_dict=True
        )
        hidden = output.hidden_states[self.layer]
        if not self.normalized:
            return hidden
        # transformers 5 keeps the layer norm on the model itself, older ones on text_model.
        model = getattr(self.text_encoder, "text_model", self.text_encoder)
        return model.final_layer_norm(hidden)


def _fragments(text: str, field: str) -> list[tuple[str, float]]:
    """The weighted fragments of a prompt; ``<lora:...>`` tags never reach the encoder."""
    return parse_weights(split_loras(text, field=field)[0], field=field)


def _weighted(provider: EmbeddingsProvider, text: str, field: str) -> torch.Tensor:
    fragments = _fragments(text, field)
    with torch.inference_mode():
        return provider.get_embeddings_for_weighted_prompt_fragments(
            text_batch=[[t for t, _ in fragments]],
            fragment_weights_batch=[[w for _, w in fragments]],
            device=provider.device,
        )


def _same_length(tensors: list[torch.Tensor], empty: torch.Tensor) -> torch.Tensor:
    """Pad every [1, chunks x 77, D] tensor with empty-prompt chunks to the longest one."""
    padded = Compel._pad_conditioning_tensors_to_same_length(
        tensors, emptystring_conditioning=empty
    )
    return torch.cat(padded)


def encode(
    pipe: Any, prompts: list[str], negatives: list[str], clip_skip: int
) -> dict[str, torch.Tensor]:
    """The embeddings of each (prompt, negative prompt) pair, for ``pipe`` (SD 1.5 or SDXL),
    as the keyword arguments the pipeline call takes instead of prompt strings.

    ``clip_skip`` counts as AUTOMATIC1111 does: 1 = the layer the model was trained with, 2 =
    one layer earlier, and so on (SD 1.5 takes the final layer, normalized; SDXL the
    penultimate, not normalized)."""
    device = pipe._execution_device  # where the encoders run, whatever the memory plan
    if not hasattr(pipe, "text_encoder_2"):
        provider = _LayerProvider(
            pipe.tokenizer, pipe.text_encoder, device, layer=-clip_skip, normalized=True
        )
        empty = provider.empty_z
        positive = _same_length([_weighted(provider, p, "prompt") for p in prompts], empty)
        negative = _same_length(
            [_weighted(provider, n, "negative_prompt") for n in negatives], empty
        )
        positive, negative = _same_length([positive, negative], empty).split(len(prompts))
        return {"prompt_embeds": positive, "negative_prompt_embeds": negative}
    layer = -(clip_skip + 1)
    first = _LayerProvider(pipe.tokenizer, pipe.text_encoder, device, layer=layer, normalized=False)
    second = _LayerProvider(
        pipe.tokenizer_2, pipe.text_encoder_2, device, layer=layer, normalized=False
    )
    empty = torch.cat([first.empty_z, second.empty_z], dim=-1)

    def embed(text: str, field: str) -> torch.Tensor:
        return torch.cat([_weighted(first, text, field), _weighted(second, text, field)], dim=-1)

    def pooled(texts: list[str], field: str) -> torch.Tensor:
        words = [plain_text(_fragments(t, field)) for t in texts]
        with torch.inference_mode():
            return second.get_pooled_embeddings(words, device=device)

    positive = _same_length([embed(p, "prompt") for p in prompts], empty)
    if not any(negatives) and pipe.config.get("force_zeros_for_empty_prompt", False):
        # What the SDXL pipeline itself does for an empty negative prompt.
        negative = torch.zeros_like(positive)
        negative_pooled = torch.zeros_like(pooled(prompts, "prompt"))
    else:
        negative = _same_length([embed(n, "negative_prompt") for n in negatives], empty)
        negative_pooled = pooled(negatives, "negative_prompt")
    positive, negative = _same_length([positive, negative], empty).split(len(prompts))
    return {
        "prompt_embeds": positive,
        "negative_prompt_embeds": negative,
        "pooled_prompt_embeds": pooled(prompts, "prompt"),
        "negative_pooled_prompt_embeds": negative_pooled,
    }


def encode_segments(
    pipe: Any, prompts: list[str], negative: str, clip_skip: int
) -> tuple[dict[str, torch.Tensor], list[int]]:
    """One sample's embeddings for a call whose regions each have their own prompt
    (``regional``): each of ``prompts`` (the whole picture's first) encoded on its own and
    the segments joined along the token axis, the negative prompt encoded to each segment's
    length and joined alike, so that both halves of classifier-free guidance have one length
    and one layout; SDXL's pooled embeddings are the whole picture's. Also the tokens each
    segment has."""
    parts = [encode(pipe, [prompt], [negative], clip_skip) for prompt in prompts]
    lengths = [part["prompt_embeds"].shape[1] for part in parts]
    joined = {
        key: torch.cat([part[key] for part in parts], dim=1)
        for key in ("prompt_embeds", "negative_prompt_embeds")
    }
    for key in ("pooled_prompt_embeds", "negative_pooled_prompt_embeds"):
        if key in parts[0]:
            joined[key] = parts[0][key]
    return joined, lengths
