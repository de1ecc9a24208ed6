"""The pipeline configurations shipped for single-file checkpoints (issue 16): checked against
published facts of the real models, without any weights: the parameter count of every part
built from them, and the CLIP tokenizer's token ids."""

from __future__ import annotations

import inspect
import json

import diffusers
import pytest
import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
)

from inpainting.engine import InpaintRequest, get_backend, run_inpaint
from inpainting.engine.backends import loading as backend_module
from inpainting.engine.probe import SHIPPED_CONFIGS, Probe, config_folder, probe
from inpainting.testing.original_layout import write_single_file
from inpainting.testing.random_weights import random_fp16
from inpainting.testing.tiny_model import tiny_config
from tests.images import box_mask, gradient
from tests.network import network_forbidden

# Parameter counts of the published models (Stable Diffusion 1.5 and its inpainting model,
# SDXL 1.0 and its inpainting model; the inpainting UNets add 5 x 320 x 3 x 3 input weights).
PUBLISHED = {
    "sd15": {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480},
    "sd15-inpainting": {"unet": 859_535_364, "vae": 83_653_863, "text_encoder": 123_060_480},
    "sdxl": {
        "unet": 2_567_463_684,
        "vae": 83_653_863,
        "text_encoder": 123_060_480,
        "text_encoder_2": 694_659_840,
    },
    "sdxl-inpainting": {
        "unet": 2_567_478_084,
        "vae": 83_653_863,
        "text_encoder": 123_060_480,
        "text_encoder_2": 694_659_840,
    },
}


def parameters(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("family", sorted(PUBLISHED))
def test_every_part_has_the_published_size(family):
    folder = SHIPPED_CONFIGS / family
    built = {}
    with init_empty_weights():  # shapes only: no memory for the weights
        built["unet"] = UNet2DConditionModel.from_config(
            UNet2DConditionModel.load_config(folder / "unet")
        )
        built["vae"] = AutoencoderKL.from_config(AutoencoderKL.load_config(folder / "vae"))
        built["text_encoder"] = CLIPTextModel(
            CLIPTextConfig.from_pretrained(folder / "text_encoder")
        )
        if (folder / "text_encoder_2").is_dir():
            built["text_encoder_2"] = CLIPTextModelWithProjection(
                CLIPTextConfig.from_pretrained(folder / "text_encoder_2")
            )
    assert {part: parameters(module) for part, module in built.items()} == PUBLISHED[family]


@pytest.mark.parametrize("family", sorted(PUBLISHED))
def test_the_pipeline_index_names_every_part_its_pipeline_needs(family):
    index = json.loads((SHIPPED_CONFIGS / family / "model_index.json").read_text())
    pipeline = getattr(diffusers, index["_class_name"])
    needed = [
        name
        for name, param in inspect.signature(pipeline.__init__).parameters.items()
        if name != "self" and param.default is inspect.Parameter.empty
    ]
    for name in needed:
        if name in ("safety_checker", "feature_extractor"):
            assert index[name] == [None, None]
        else:
            assert index[name][0] in ("diffusers", "transformers"), name
            assert (SHIPPED_CONFIGS / family / name).is_dir(), name


def test_the_tokenizers_give_clips_token_ids():
    first = CLIPTokenizer.from_pretrained(SHIPPED_CONFIGS / "sdxl" / "tokenizer")
    second = CLIPTokenizer.from_pretrained(SHIPPED_CONFIGS / "sdxl" / "tokenizer_2")
    assert len(first) == 49408 and first.model_max_length == 77
    # The ids every CLIP ViT-L/14 tokenizer gives (openai/clip-vit-large-patch14).
    assert first("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    padded = first("a photo of a cat", padding="max_length").input_ids
    assert len(padded) == 77 and padded[7:] == [49407] * 70  # SD 1.5 pads with the end token
    padded = second("a photo of a cat", padding="max_length").input_ids
    assert padded[7:] == [0] * 70  # SDXL's second encoder pads with "!" (id 0)
    for family in PUBLISHED:
        tokenizer = CLIPTokenizer.from_pretrained(SHIPPED_CONFIGS / family / "tokenizer")
        assert tokenizer("an astronaut").input_ids == [49406, 550, 18376, 49407]


def test_a_users_configuration_folder_comes_before_the_shipped_one(tmp_path):
    found = Probe("sd15", True, "single-file")
    assert config_folder(tmp_path, found) == SHIPPED_CONFIGS / "sd15-inpainting"
    assert config_folder(None, found) == SHIPPED_CONFIGS / "sd15-inpainting"
    own = tmp_path / "sd15-inpainting"
    own.mkdir()
    (own / "model_index.json").write_text("{}")
    assert config_folder(tmp_path, found) == own


def random_sd15(folder):
    """A Stable Diffusion 1.5 pipeline of the real size (the UNet of ``folder``: inpainting or
    base), random fp16 weights, built from the shipped configuration alone (its tokenizer and
    scheduler included)."""
    from diffusers import PNDMScheduler, StableDiffusionInpaintPipeline

    with init_empty_weights():
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(folder / "vae"))
        text_encoder = CLIPTextModel(CLIPTextConfig.from_pretrained(folder / "text_encoder"))
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder / "unet"))
    return StableDiffusionInpaintPipeline(
        vae=random_fp16(vae, 1),
        text_encoder=random_fp16(text_encoder, 2),
        tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"),
        unet=random_fp16(unet, 3),
        scheduler=PNDMScheduler.from_config(PNDMScheduler.load_config(folder / "scheduler")),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


@pytest.mark.heavy
@pytest.mark.parametrize("family", ["sd15-inpainting", "sd15"])
def test_a_real_size_sd15_checkpoint_loads_offline_with_the_shipped_configuration(
    family, tmp_path, monkeypatch
):
    """A real-size (1.07 billion parameters) SD 1.5 checkpoint, inpainting or base, in the
    original layout and fp16 as people download them, loads with the shipped configuration
    (no MODEL_CONFIGS_DIR folder, no network), holds exactly the checkpoint's weights, and
    paints."""
    pipe = random_sd15(SHIPPED_CONFIGS / family)
    path = write_single_file(pipe, tmp_path / f"real-size-{family}.safetensors")
    expected = {k: v.clone() for k, v in list(pipe.unet.state_dict().items())[::40]}
    del pipe
    assert probe(path) == Probe("sd15", family.endswith("inpainting"), "single-file")
    backend_module.unload_all()
    with network_forbidden(monkeypatch) as attempts:
        backend = get_backend("diffusers", tiny_config(path, model_configs=str(tmp_path / "none")))
        result = run_inpaint(
            InpaintRequest(
                image=gradient(64, 64),
                mask=box_mask(64, 64, (16, 16, 48, 48), inpaint_white=False),
                prompt="a red rose",
                num_inference_steps=1,
                seed=1,
            ),
            backend,
        )
    assert attempts == []
    loaded = next(reversed(backend_module._PIPELINES.values()))  # the one that painted
    unet = loaded.unet.state_dict()
    assert all(torch.equal(unet[k], v.float()) for k, v in expected.items())
    assert loaded.tokenizer("a photo of a cat").input_ids[:3] == [49406, 320, 1125]
    assert result.images[0].size == (64, 64)
    backend_module.unload_all()
