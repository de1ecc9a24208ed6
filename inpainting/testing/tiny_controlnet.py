"""A tiny random ControlNet for the tiny SD 1.5 pipeline, saved as a diffusers folder (as
lllyasviel/control_v11p_sd15_inpaint is published). A real ControlNet starts training with
its output convolutions at zero; here they are random too, so that it visibly steers."""

from __future__ import annotations

from pathlib import Path


def write_tiny_controlnet(pipeline: str | Path, folder: str | Path, *, seed: int = 0) -> Path:
    """A ControlNet shaped after the tiny pipeline's UNet (4 latent channels in: the inpaint
    ControlNet pipeline gives it the latents, the UNet gets the mask as well)."""
    import torch  # noqa: PLC0415 - heavy, loaded only where a diffusion model runs
    from diffusers import (  # noqa: PLC0415 - as torch
        AutoencoderKL,
        ControlNetModel,
        UNet2DConditionModel,
    )

    config = UNet2DConditionModel.load_config(str(pipeline), subfolder="unet")
    vae = AutoencoderKL.load_config(str(pipeline), subfolder="vae")
    # The control image is brought down to the latents' size: one stride-2 step per halving
    # the VAE does.
    halvings = len(vae["block_out_channels"]) - 1
    torch.manual_seed(seed)
    controlnet = ControlNetModel(
        in_channels=4,
        down_block_types=config["down_block_types"],
        block_out_channels=config["block_out_channels"],
        layers_per_block=config["layers_per_block"],
        cross_attention_dim=config["cross_attention_dim"],
        attention_head_dim=config["attention_head_dim"],
        norm_num_groups=config["norm_num_groups"],
        conditioning_embedding_out_channels=tuple(8 * 2**i for i in range(halvings + 1)),
        # SDXL: the text-and-time embedding of its UNet.
        **{
            key: config[key]
            for key in (
                "addition_embed_type",
                "addition_time_embed_dim",
                "projection_class_embeddings_input_dim",
                "transformer_layers_per_block",
                "use_linear_projection",
            )
            if config.get(key) is not None
        },
    )
    zero_initialised = [
        *controlnet.controlnet_down_blocks,
        controlnet.controlnet_mid_block,
        controlnet.controlnet_cond_embedding.conv_out,
    ]
    with torch.no_grad():
        for module in zero_initialised:
            for parameter in module.parameters():
                parameter.normal_(0.0, 0.5)
    folder = Path(folder)
    controlnet.save_pretrained(str(folder), safe_serialization=True)
    return folder
