"""Tiny random LoRAs for a tiny pipeline, written as users have them: the diffusers / PEFT
layout (``unet.….lora_A.weight``) or the kohya / A1111 layout
(``lora_unet_…_to_q.lora_down.weight`` with an ``alpha`` each). Tests use them to check that
a LoRA changes the picture, that weight 0 is no LoRA, and that nothing of it stays behind."""

from __future__ import annotations

from pathlib import Path

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


def _peft_state(pipe, *, rank: int, seed: int) -> dict:
    """Random LoRA weights for ``pipe``'s UNet and text encoders, in the PEFT layout."""
    import torch  # noqa: PLC0415 - heavy, loaded only where a diffusion model runs
    from peft import LoraConfig  # noqa: PLC0415 - heavy, as torch
    from peft.utils import get_peft_model_state_dict  # noqa: PLC0415 - heavy, as torch

    torch.manual_seed(seed)
    state = {}
    parts = [("unet", UNET_TARGETS), ("text_encoder", TEXT_TARGETS)]
    if hasattr(pipe, "text_encoder_2"):
        parts.append(("text_encoder_2", TEXT_TARGETS))
    for part, targets in parts:
        module = getattr(pipe, part)
        config = LoraConfig(
            r=rank, lora_alpha=rank, target_modules=targets, init_lora_weights=False
        )
        module.add_adapter(config, adapter_name="tiny")
        for key, value in get_peft_model_state_dict(module, adapter_name="tiny").items():
            state[f"{part}.{key}"] = (value * 2.0).contiguous()  # a visible effect
    return state


def _kohya_key(key: str) -> str:
    """``unet.down_blocks.0.….to_q.lora_A.weight`` -> ``lora_unet_down_blocks_0_…_to_q
    .lora_down.weight``; text encoders as kohya names them (``lora_te_text_model_…``)."""
    part, rest = key.split(".", 1)
    module, kind, _ = rest.rsplit(".", 2)
    prefix = {"unet": "lora_unet_", "text_encoder": "lora_te_", "text_encoder_2": "lora_te2_"}
    if part != "unet":
        module = "text_model." + module
    suffix = "lora_down" if kind == "lora_A" else "lora_up"
    return f"{prefix[part]}{module.replace('.', '_')}.{suffix}.weight"


def write_tiny_lora(folder: str | Path, path: str | Path, *, layout: str, seed: int = 0) -> Path:
    """A random LoRA for the tiny pipeline in ``folder``, saved to ``path`` in ``layout``
    (``peft`` or ``kohya``)."""
    import torch  # noqa: PLC0415 - heavy, as above
    from diffusers import AutoPipelineForInpainting  # noqa: PLC0415 - heavy, as torch
    from safetensors.torch import save_file  # noqa: PLC0415 - heavy, as torch

    pipe = AutoPipelineForInpainting.from_pretrained(str(folder), local_files_only=True)
    rank = 4
    state = _peft_state(pipe, rank=rank, seed=seed)
    if layout == "kohya":
        kohya = {}
        for key, value in state.items():
            name = _kohya_key(key)
            kohya[name] = value
            kohya[name.split(".")[0] + ".alpha"] = torch.tensor(float(rank))
        state = kohya
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path


#: The FLUX.2 transformer's modules an erase adapter adapts (slopshop/erase-v1's: attention,
#: the fused single-block projection and the feed-forward input).
FLUX2_TARGETS = [*UNET_TARGETS, "to_qkv_mlp_proj", "ff.linear_in"]


def write_tiny_eraser(
    folder: str | Path, dest: str | Path, *, embedding: bool = True, seed: int = 0
) -> Path:
    """A random erase adapter for the tiny FLUX.2 [klein] in ``folder``, laid out as
    slopshop/erase-v1 publishes it: ``dest/erase_v1_diffusers.safetensors`` (a LoRA of the
    transformer, diffusers keys) and ``dest/prompt_embeds.safetensors`` (``prompt_embeds``
    [1, 8, the text width] and ``text_ids``); ``embedding`` False: ``instruction.txt``
    instead."""
    import torch  # noqa: PLC0415 - heavy, as above
    from diffusers import Flux2Transformer2DModel  # noqa: PLC0415 - heavy, as torch
    from peft import LoraConfig  # noqa: PLC0415 - heavy, as torch
    from peft.utils import get_peft_model_state_dict  # noqa: PLC0415 - heavy, as torch
    from safetensors.torch import save_file  # noqa: PLC0415 - heavy, as torch

    torch.manual_seed(seed)
    transformer = Flux2Transformer2DModel.from_pretrained(
        str(folder), subfolder="transformer", local_files_only=True
    )
    config = LoraConfig(r=4, lora_alpha=4, target_modules=FLUX2_TARGETS, init_lora_weights=False)
    transformer.add_adapter(config, adapter_name="erase")
    state = {
        f"transformer.{key}": (value * 2.0).contiguous()  # a visible effect
        for key, value in get_peft_model_state_dict(transformer, adapter_name="erase").items()
    }
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    save_file(state, str(dest / "erase_v1_diffusers.safetensors"))
    if embedding:
        width = transformer.config.joint_attention_dim
        tokens = torch.arange(8)
        text_ids = torch.stack([torch.zeros(8), torch.zeros(8), torch.zeros(8), tokens], -1)
        save_file(
            {
                "prompt_embeds": torch.randn(1, 8, width).to(torch.bfloat16),
                "text_ids": text_ids[None].to(torch.int64),
            },
            str(dest / "prompt_embeds.safetensors"),
        )
    else:
        (dest / "instruction.txt").write_text("Remove the object under the white area.\n")
    return dest
