"""Write a diffusers pipeline as one ``.safetensors`` file in the original (LDM) key layout:
the single-file checkpoint format of AUTOMATIC1111, ComfyUI and Civitai.

Tests use it to make tiny single-file SD 1.5 and SDXL checkpoints from the tiny random
pipelines, so the single-file path (probe, load) runs on the layout users have. The key names
are the inverse of diffusers' own conversion (``diffusers.loaders.single_file_utils``): its
tables are used where it has them, and a test checks that diffusers reads every tensor back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

UNET = "model.diffusion_model."
VAE = "first_stage_model."
SD1_TEXT = "cond_stage_model.transformer."
SDXL_TEXT_1 = "conditioner.embedders.0.transformer."
SDXL_TEXT_2 = "conditioner.embedders.1.model."

_RESNET = (  # diffusers name -> original name, inside a UNet resnet
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("time_emb_proj", "emb_layers.1"),
    ("conv_shortcut", "skip_connection"),
)
_VAE_ATTENTION = (
    ("group_norm", "norm"),
    ("to_q", "q"),
    ("to_k", "k"),
    ("to_v", "v"),
    ("to_out.0", "proj_out"),
)


def _rename(rest: str, pairs) -> str:
    head, _, tail = rest.partition(".")
    for new, old in pairs:
        if rest.startswith(new + "."):
            return old + rest[len(new) :]
    return head + ("." + tail if tail else "")


def unet_keys(state: dict, config: dict) -> dict:
    """A diffusers UNet's state dict in the original layout (without the prefix)."""
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    table = dict(DIFFUSERS_TO_LDM_MAPPING["unet"]["layers"])
    if config.get("addition_embed_type") == "text_time":
        table.update(DIFFUSERS_TO_LDM_MAPPING["unet"]["addition_embed_type"])
    stride = config["layers_per_block"] + 1
    up_attention = {
        int(key.split(".")[1])
        for key in state
        if key.startswith("up_blocks.") and ".attentions." in key
    }
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if key in table:
            out[table[key]] = value
        elif parts[0] == "down_blocks" and parts[2] in ("resnets", "attentions"):
            block, layer = int(parts[1]), int(parts[3])
            rest = ".".join(parts[4:])
            index = block * stride + layer + 1
            if parts[2] == "resnets":
                out[f"input_blocks.{index}.0.{_rename(rest, _RESNET)}"] = value
            else:
                out[f"input_blocks.{index}.1.{rest}"] = value
        elif parts[0] == "down_blocks" and parts[2] == "downsamplers":
            block = int(parts[1])
            out[f"input_blocks.{(block + 1) * stride}.0.op.{parts[-1]}"] = value
        elif parts[0] == "mid_block":
            kind, index, rest = parts[1], int(parts[2]), ".".join(parts[3:])
            if kind == "resnets":
                out[f"middle_block.{2 * index}.{_rename(rest, _RESNET)}"] = value
            else:
                out[f"middle_block.1.{rest}"] = value
        elif parts[0] == "up_blocks" and parts[2] in ("resnets", "attentions"):
            block, layer = int(parts[1]), int(parts[3])
            rest = ".".join(parts[4:])
            index = block * stride + layer
            if parts[2] == "resnets":
                out[f"output_blocks.{index}.0.{_rename(rest, _RESNET)}"] = value
            else:
                out[f"output_blocks.{index}.1.{rest}"] = value
        elif parts[0] == "up_blocks" and parts[2] == "upsamplers":
            block = int(parts[1])
            slot = 2 if block in up_attention else 1
            out[f"output_blocks.{block * stride + stride - 1}.{slot}.conv.{parts[-1]}"] = value
        else:
            raise ValueError(f"no original name for the UNet key {key!r}")
    return out


def vae_keys(state: dict, config: dict) -> dict:
    """A diffusers VAE's state dict in the original layout (without the prefix)."""
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    table = DIFFUSERS_TO_LDM_MAPPING["vae"]
    blocks = len(config["up_block_types"])
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        side = parts[0]  # encoder | decoder
        if key in table:
            out[table[key]] = value
        elif parts[1] in ("down_blocks", "up_blocks") and parts[3] == "resnets":
            block = int(parts[2]) if side == "encoder" else blocks - 1 - int(parts[2])
            name = "down" if side == "encoder" else "up"
            rest = ".".join(parts[5:]).replace("conv_shortcut", "nin_shortcut")
            out[f"{side}.{name}.{block}.block.{parts[4]}.{rest}"] = value
        elif parts[1] == "down_blocks" and parts[3] == "downsamplers":
            out[f"encoder.down.{parts[2]}.downsample.conv.{parts[-1]}"] = value
        elif parts[1] == "up_blocks" and parts[3] == "upsamplers":
            block = blocks - 1 - int(parts[2])
            out[f"decoder.up.{block}.upsample.conv.{parts[-1]}"] = value
        elif parts[1] == "mid_block" and parts[2] == "resnets":
            rest = ".".join(parts[4:]).replace("conv_shortcut", "nin_shortcut")
            out[f"{side}.mid.block_{int(parts[3]) + 1}.{rest}"] = value
        elif parts[1] == "mid_block" and parts[2] == "attentions":
            rest = _rename(".".join(parts[4:]), _VAE_ATTENTION)
            # The original attention projections are 1x1 convolutions.
            out[f"{side}.mid.attn_1.{rest}"] = value[:, :, None, None] if value.ndim == 2 else value
        else:
            raise ValueError(f"no original name for the VAE key {key!r}")
    return out


def text_keys(state: dict) -> dict:
    """A CLIP text encoder's state dict with the ``text_model.`` names that checkpoints carry
    (transformers 5 names the modules without it)."""
    return {
        k if k.startswith(("text_model.", "text_projection")) else "text_model." + k: v
        for k, v in state.items()
    }


def open_clip_keys(state: dict) -> dict:
    """A CLIPTextModelWithProjection's state dict in OpenCLIP's layout (SDXL's second text
    encoder): fused q/k/v projections, ``text_projection`` transposed."""
    import torch

    out = {
        "positional_embedding": state["text_model.embeddings.position_embedding.weight"],
        "token_embedding.weight": state["text_model.embeddings.token_embedding.weight"],
        "ln_final.weight": state["text_model.final_layer_norm.weight"],
        "ln_final.bias": state["text_model.final_layer_norm.bias"],
        "text_projection": state["text_projection.weight"].T.contiguous(),
    }
    names = (
        ("layer_norm1", "ln_1"),
        ("layer_norm2", "ln_2"),
        ("mlp.fc1", "mlp.c_fc"),
        ("mlp.fc2", "mlp.c_proj"),
        ("self_attn.out_proj", "attn.out_proj"),
    )
    layers = {int(k.split(".")[3]) for k in state if k.startswith("text_model.encoder.layers.")}
    for i in layers:
        source = f"text_model.encoder.layers.{i}."
        target = f"transformer.resblocks.{i}."
        for new, old in names:
            for kind in ("weight", "bias"):
                out[f"{target}{old}.{kind}"] = state[f"{source}{new}.{kind}"]
        for kind in ("weight", "bias"):
            out[f"{target}attn.in_proj_{kind}"] = torch.cat(
                [state[f"{source}self_attn.{p}_proj.{kind}"] for p in ("q", "k", "v")]
            )
    return out


def write_single_file(pipe, path: str | Path) -> Path:
    """Save ``pipe`` (SD 1.5 or SDXL, inpainting or base) as one original-layout checkpoint."""
    from safetensors.torch import save_file

    checkpoint = {}
    unet = unet_keys(pipe.unet.state_dict(), dict(pipe.unet.config))
    checkpoint.update({UNET + k: v for k, v in unet.items()})
    vae = vae_keys(pipe.vae.state_dict(), dict(pipe.vae.config))
    checkpoint.update({VAE + k: v for k, v in vae.items()})
    first = SDXL_TEXT_1 if hasattr(pipe, "text_encoder_2") else SD1_TEXT
    checkpoint.update({first + k: v for k, v in text_keys(pipe.text_encoder.state_dict()).items()})
    if hasattr(pipe, "text_encoder_2"):
        second = open_clip_keys(text_keys(pipe.text_encoder_2.state_dict()))
        checkpoint.update({SDXL_TEXT_2 + k: v for k, v in second.items()})
    path = Path(path)
    save_file({k: v.contiguous() for k, v in checkpoint.items()}, str(path))
    return path


#: diffusers' FLUX transformer name -> Black Forest Labs' (flux1-fill-dev.safetensors), for the
#: tensors that keep their shape: the inverse of diffusers'
#: ``convert_flux_transformer_checkpoint_to_diffusers``.
_FLUX_SAME = (
    ("time_text_embed.timestep_embedder.linear_1", "time_in.in_layer"),
    ("time_text_embed.timestep_embedder.linear_2", "time_in.out_layer"),
    ("time_text_embed.text_embedder.linear_1", "vector_in.in_layer"),
    ("time_text_embed.text_embedder.linear_2", "vector_in.out_layer"),
    ("time_text_embed.guidance_embedder.linear_1", "guidance_in.in_layer"),
    ("time_text_embed.guidance_embedder.linear_2", "guidance_in.out_layer"),
    ("context_embedder", "txt_in"),
    ("x_embedder", "img_in"),
    ("proj_out", "final_layer.linear"),
)
_FLUX_DOUBLE = (
    ("norm1.linear", "img_mod.lin"),
    ("norm1_context.linear", "txt_mod.lin"),
    ("attn.norm_q", "img_attn.norm.query_norm"),
    ("attn.norm_k", "img_attn.norm.key_norm"),
    ("attn.norm_added_q", "txt_attn.norm.query_norm"),
    ("attn.norm_added_k", "txt_attn.norm.key_norm"),
    ("ff.net.0.proj", "img_mlp.0"),
    ("ff.net.2", "img_mlp.2"),
    ("ff_context.net.0.proj", "txt_mlp.0"),
    ("ff_context.net.2", "txt_mlp.2"),
    ("attn.to_out.0", "img_attn.proj"),
    ("attn.to_add_out", "txt_attn.proj"),
)
_FLUX_SINGLE = (
    ("norm.linear", "modulation.lin"),
    ("attn.norm_q", "norm.query_norm"),
    ("attn.norm_k", "norm.key_norm"),
    ("proj_out", "linear2"),
)


def flux_transformer_keys(state: dict) -> dict:
    """A diffusers ``FluxTransformer2DModel`` state dict in Black Forest Labs' own layout: QKV
    (and a single block's MLP input) fused into one projection, RMS norm weights named
    ``scale``, the final norm's halves as (shift, scale)."""
    import torch

    out = {}

    def put(name: str, tensor) -> None:
        """Store under BFL's name: the q/k RMS norms' weights are called ``scale`` there."""
        out[name.replace(".weight", ".scale") if "_norm." in name else name] = tensor

    for key, tensor in state.items():
        for new, old in _FLUX_SAME:
            if key.startswith(new + "."):
                put(old + key[len(new) :], tensor)
        if key.startswith("norm_out.linear."):
            scale, shift = tensor.chunk(2, dim=0)
            kind = key.rsplit(".", 1)[1]
            out[f"final_layer.adaLN_modulation.1.{kind}"] = torch.cat([shift, scale])
    blocks = {int(k.split(".")[1]) for k in state if k.startswith("transformer_blocks.")}
    for i in sorted(blocks):
        prefix, target = f"transformer_blocks.{i}.", f"double_blocks.{i}."
        for new, old in _FLUX_DOUBLE:
            for kind in ("weight", "bias"):
                if f"{prefix}{new}.{kind}" in state:
                    put(f"{target}{old}.{kind}", state[f"{prefix}{new}.{kind}"])
        for kind in ("weight", "bias"):
            image = [state[f"{prefix}attn.to_{p}.{kind}"] for p in "qkv"]
            text = [state[f"{prefix}attn.add_{p}_proj.{kind}"] for p in "qkv"]
            out[f"{target}img_attn.qkv.{kind}"] = torch.cat(image)
            out[f"{target}txt_attn.qkv.{kind}"] = torch.cat(text)
    singles = {int(k.split(".")[1]) for k in state if k.startswith("single_transformer_blocks.")}
    for i in sorted(singles):
        prefix, target = f"single_transformer_blocks.{i}.", f"single_blocks.{i}."
        for new, old in _FLUX_SINGLE:
            for kind in ("weight", "bias"):
                if f"{prefix}{new}.{kind}" in state:
                    put(f"{target}{old}.{kind}", state[f"{prefix}{new}.{kind}"])
        for kind in ("weight", "bias"):
            parts = [state[f"{prefix}attn.to_{p}.{kind}"] for p in "qkv"]
            out[f"{target}linear1.{kind}"] = torch.cat([*parts, state[f"{prefix}proj_mlp.{kind}"]])
    return out


def write_flux_single_file(transformer, path: str | Path) -> Path:
    """A FLUX transformer as Black Forest Labs publish it: one ``.safetensors`` of the
    transformer alone, in their key layout."""
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in transformer.state_dict().items()}
    save_file(flux_transformer_keys(state), str(path))
    return Path(path)


def write_flux_gguf(transformer, path: str | Path, quant: str = "Q8_0") -> Path:
    """A FLUX transformer as the community's GGUF files hold it (city96's layout): Black
    Forest Labs' key names, quantized as ``write_gguf`` does."""
    state = {k: v.contiguous() for k, v in transformer.state_dict().items()}
    return write_gguf(flux_transformer_keys(state), path, arch="flux", quant=quant)


def write_gguf(tensors: dict, path: str | Path, *, arch: str, quant: str = "Q8_0") -> Path:
    """``tensors`` (already in the layout the community's files use) as a GGUF file: each
    matrix whose rows split into the format's blocks quantized to ``quant`` (Q8_0, Q4_0, ...
    what gguf-py can write, and Q4_K by ``quantize_q4_k``), the rest (biases, norms) in F32."""
    import gguf

    kind = gguf.GGMLQuantizationType[quant]
    block = gguf.GGML_QUANT_SIZES[kind][0]
    encode = quantize_q4_k if quant == "Q4_K" else lambda data: gguf.quants.quantize(data, kind)
    writer = gguf.GGUFWriter(str(path), arch=arch)
    for name, tensor in tensors.items():
        data = tensor.float().numpy()
        if data.ndim == 2 and data.shape[-1] % block == 0:
            writer.add_tensor(name, encode(data), raw_dtype=kind)
        else:
            writer.add_tensor(name, data.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(path)


def quantize_q4_k(data):
    """``data`` (rows of a multiple of 256 values) in GGML's Q4_K blocks, which gguf-py reads
    but cannot write: per 256 values a float16 scale and minimum, eight 32-value sub-blocks
    with 6-bit scales and minimums (12 bytes packed), and 4-bit quants (128 bytes); 144 bytes
    in all. Each sub-block maps its own range onto 0..15 (a plain, not an optimal, choice)."""
    # A few thousand super-blocks at a time: each step's temporaries stay in the CPU's caches
    # (a 532 M-value transformer in one go took 11.5 s, in chunks 4 s).
    flat = data.reshape(-1, 256)
    blocks = np.empty((len(flat), 144), np.uint8)
    for start in range(0, len(flat), _Q4_K_CHUNK):
        blocks[start : start + _Q4_K_CHUNK] = _q4_k_blocks(flat[start : start + _Q4_K_CHUNK])
    return blocks.reshape(*data.shape[:-1], -1)


#: Super-blocks (256 values) ``quantize_q4_k`` quantizes at a time.
_Q4_K_CHUNK = 8192


def _q4_k_blocks(data):
    """Rows of 256 values in Q4_K blocks of 144 bytes (``quantize_q4_k``)."""
    rows = data.reshape(-1, 8, 32).astype(np.float32)  # super-blocks of eight sub-blocks
    low = np.minimum(rows.min(axis=-1), 0.0)
    step = (rows.max(axis=-1) - low) / 15.0
    d = np.maximum(step.max(axis=-1), 1e-12) / 63.0
    dmin = np.maximum((-low).max(axis=-1), 1e-12) / 63.0
    sc = np.clip(np.round(step / d[:, None]), 0, 63).astype(np.uint8)
    mn = np.clip(np.round(-low / dmin[:, None]), 0, 63).astype(np.uint8)
    scale = d.astype(np.float16).astype(np.float32)[:, None] * sc
    offset = dmin.astype(np.float16).astype(np.float32)[:, None] * mn
    q = np.round((rows + offset[..., None]) / np.where(scale > 0, scale, 1.0)[..., None])
    q = np.clip(q, 0, 15).astype(np.uint8)
    packed = np.concatenate(
        [
            (sc[:, :4] & 0x3F) | ((sc[:, 4:] >> 4) << 6),
            (mn[:, :4] & 0x3F) | ((mn[:, 4:] >> 4) << 6),
            (sc[:, 4:] & 0x0F) | ((mn[:, 4:] & 0x0F) << 4),
        ],
        axis=-1,
    )
    quants = (q[:, 0::2] | (q[:, 1::2] << 4)).reshape(-1, 128)  # pairs of sub-blocks, by nibble
    blocks = np.concatenate(
        [
            d.astype(np.float16).view(np.uint8).reshape(-1, 2),
            dmin.astype(np.float16).view(np.uint8).reshape(-1, 2),
            packed,
            quants,
        ],
        axis=-1,
    )
    return blocks
