"""Probing model files: family and inpainting from a checkpoint's keys and shapes (its header
alone), from a diffusers folder's configuration; pickles and unknown files refused with why."""

from __future__ import annotations

import json

import diffusers
import numpy as np
import pytest
from safetensors.numpy import save_file

from inpainting.engine.backends.loading import family_of_model
from inpainting.engine.families import FAMILIES
from inpainting.engine.probe import (
    Probe,
    Unsupported,
    family_of_width,
    probe,
    probe_controlnet,
    read_header,
)
from inpainting.engine.types import EngineError
from inpainting.testing.tiny_model import write_tiny_inpaint_model

UNET_IN = "model.diffusion_model.input_blocks.0.0.weight"
SD1_TEXT = "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight"
SDXL_TEXT_2 = "conditioner.embedders.1.model.positional_embedding"


def checkpoint(path, tensors: dict[str, tuple[int, ...]]):
    save_file({k: np.zeros(shape, np.float16) for k, shape in tensors.items()}, str(path))
    return path


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({UNET_IN: (320, 9, 3, 3), SD1_TEXT: (77, 768)}, Probe("sd15", True, "single-file")),
        ({UNET_IN: (320, 4, 3, 3), SD1_TEXT: (77, 768)}, Probe("sd15", False, "single-file")),
        ({UNET_IN: (320, 9, 3, 3), SDXL_TEXT_2: (77, 1280)}, Probe("sdxl", True, "single-file")),
        ({UNET_IN: (320, 4, 3, 3), SDXL_TEXT_2: (77, 1280)}, Probe("sdxl", False, "single-file")),
        (
            {"double_blocks.0.img_attn.norm.key_norm.scale": (128,), "img_in.weight": (3072, 384)},
            Probe("flux", True, "single-file"),
        ),
        (  # as ComfyUI packages it
            {
                "model.diffusion_model.double_blocks.0.img_attn.norm.key_norm.scale": (128,),
                "model.diffusion_model.img_in.weight": (3072, 384),
            },
            Probe("flux", True, "single-file"),
        ),
        (
            {"model.diffusion_model.joint_blocks.0.context_block.adaLN_modulation.1.bias": (9,)},
            Probe("sd3", False, "single-file"),
        ),
    ],
    ids=[
        "sd15-inpainting",
        "sd15",
        "sdxl-inpainting",
        "sdxl",
        "flux-fill",
        "flux-fill-comfy",
        "sd3",
    ],
)
def test_a_checkpoint_family_from_its_keys(tmp_path, keys, expected):
    found = probe(checkpoint(tmp_path / "model.safetensors", keys))
    assert found == expected
    assert (
        found.working_size == {"sd15": 512, "sdxl": 1024, "flux": 1024, "sd3": 1024}[found.family]
    )


@pytest.mark.parametrize(
    ("keys", "reason"),
    [
        ({"double_blocks.0.img_attn.norm.key_norm.scale": (128,)}, "FLUX.1 base"),
        (
            {
                "double_blocks.0.img_attn.norm.key_norm.scale": (128,),
                "img_in.weight": (3072, 64),
            },
            "img_in of 64 channels",
        ),
        ({UNET_IN: (320, 4, 3, 3), "cond_stage_model.model.token_embedding.weight": (8, 4)}, "2.x"),
        (
            {UNET_IN: (320, 4, 3, 3), "conditioner.embedders.0.model.text_projection": (4, 4)},
            "refiner",
        ),
        ({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": (4, 4)}, "LoRA"),
        ({UNET_IN: (320, 4, 3, 3)}, "could not be detected"),
        ({UNET_IN: (320, 8, 3, 3), SD1_TEXT: (77, 768)}, "8 input channels"),
    ],
    ids=["flux-no-img-in", "flux-base", "sd2", "refiner", "lora", "no-text-encoder", "odd-unet"],
)
def test_what_cannot_run_is_refused_with_the_reason(tmp_path, keys, reason):
    with pytest.raises(Unsupported, match=reason):
        probe(checkpoint(tmp_path / "x.safetensors", keys))


@pytest.mark.parametrize("suffix", [".ckpt", ".bin", ".pt", ".pth"])
def test_pickles_are_refused_unread(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"\x80\x04 would run code")
    with pytest.raises(Unsupported, match="pickle .* can run any code"):
        probe(path)


def test_a_file_that_is_not_safetensors(tmp_path):
    for content in (b"", b"\xff" * 8 + b"{}", (20).to_bytes(8, "little") + b"not json at all!!!!!"):
        path = tmp_path / "broken.safetensors"
        path.write_bytes(content)
        with pytest.raises(Unsupported, match="not a safetensors file"):
            read_header(path)


def test_the_header_alone_is_read(tmp_path):
    """A checkpoint cut off after its header still probes: no weight is read."""
    path = checkpoint(tmp_path / "full.safetensors", {UNET_IN: (320, 9, 3, 3), SD1_TEXT: (77, 768)})
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: 8 + length])
    assert probe(cut) == Probe("sd15", True, "single-file")


def test_a_diffusers_folder(tmp_path):
    folder = write_tiny_inpaint_model(tmp_path / "tiny")
    assert probe(folder) == Probe("sd15", True, "diffusers")
    index = json.loads((folder / "model_index.json").read_text())
    index["_class_name"] = "KandinskyV22InpaintPipeline"
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(Unsupported, match="'KandinskyV22InpaintPipeline' pipeline is not"):
        probe(folder)
    with pytest.raises(Unsupported, match="not a diffusers pipeline folder"):
        probe(tmp_path)


def test_a_malformed_header_is_refused_not_a_crash(tmp_path):
    """Attacker-shaped headers (no shape, a shape of text, a UNet weight of rank 1, a list)
    are refused with a reason; the scan goes on with the other files."""
    for table in (
        {UNET_IN: {"dtype": "F16"}},
        {UNET_IN: {"dtype": "F16", "shape": "320"}},
        {UNET_IN: "not an entry"},
        {
            UNET_IN: {"dtype": "F16", "shape": [320], "data_offsets": [0, 640]},
            SD1_TEXT: {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]},
        },
    ):
        header = json.dumps(table).encode()
        path = tmp_path / "bad.safetensors"
        path.write_bytes(len(header).to_bytes(8, "little") + header)
        with pytest.raises(Unsupported):
            probe(path)
    (tmp_path / "listy").mkdir()
    (tmp_path / "listy" / "model_index.json").write_text("[1, 2]")
    (tmp_path / "listy" / "unet").mkdir()
    (tmp_path / "listy" / "unet" / "config.json").write_text("{}")
    with pytest.raises(Unsupported, match="bad configuration"):
        probe(tmp_path / "listy")


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_a_model_that_cannot_be_identified_says_why_and_is_not_taken_for_sd15(tmp_path, kind):
    """A model the machine has but cannot identify (a folder whose model_index.json names no
    family's pipeline, a .safetensors file that is not one) is an error naming it and the
    reason, not Stable Diffusion 1.5 failing later with "could not load ... download_model".
    A model the machine does not have is still taken for SD 1.5 (loading it says so)."""
    if kind == "folder":
        model = tmp_path / "odd"
        model.mkdir()
        (model / "model_index.json").write_text('{"_class_name": "NoSuchPipeline"}')
    else:
        model = tmp_path / "odd.safetensors"
        model.write_bytes(b"not a safetensors file at all")
    with pytest.raises(EngineError, match=f"The model at {model} cannot be identified: .+"):
        family_of_model(str(model))
    assert family_of_model(str(tmp_path / "absent")).name == "sd15"


@pytest.mark.parametrize("family", list(FAMILIES.values()), ids=lambda f: f.name)
def test_a_family_that_takes_add_ons_declares_how_to_read_and_run_them(family):
    """LoRA, ControlNet and IP-Adapter support is the family's to declare (issue 54): a family
    that takes one names the width its add-on files read (how the probe tells them apart),
    and one that takes a ControlNet names the diffusers pipeline that runs it."""
    caps = family.capabilities
    if caps.loras or caps.controlnet or caps.ip_adapter:
        assert family.add_on_width and family_of_width(family.add_on_width) == family.name
    if caps.controlnet:
        assert hasattr(diffusers, family.controlnet_pipeline)
    else:
        assert family.controlnet_pipeline is None


@pytest.mark.parametrize(
    ("config", "family"),
    [
        ({"cross_attention_dim": 32}, "sd15"),  # a tiny one: the add_on_fallback family's
        ({"cross_attention_dim": 768}, "sd15"),
        ({"cross_attention_dim": 2048, "addition_embed_type": "text_time"}, "sdxl"),
        ({"cross_attention_dim": 32, "addition_embed_type": "text_time"}, "sdxl"),
        ({"cross_attention_dim": 1024}, None),  # SD 2.x
    ],
)
def test_a_controlnet_is_told_by_what_its_family_declares(tmp_path, config, family):
    """Which family takes the ControlNets no width tells apart (custom and tiny ones) is
    declared by one family (SD 1.5), SDXL's by its declared config marks; SD 2.x's width is
    refused by name."""
    assert [f.name for f in FAMILIES.values() if f.add_on_fallback] == ["sd15"]
    folder = tmp_path / "cn"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"_class_name": "ControlNetModel", **config}))
    save_file({"w": np.zeros(1, np.float32)}, str(folder / "diffusion_pytorch_model.safetensors"))
    if family is None:
        with pytest.raises(Unsupported, match="Stable Diffusion 2.x"):
            probe_controlnet(folder)
    else:
        assert probe_controlnet(folder) == family


def test_no_width_is_no_family():
    """A width the add-on does not say (None) names no family: families that read no add-ons
    declare None as theirs."""
    assert family_of_width(None) is None
