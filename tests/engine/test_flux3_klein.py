"""FLUX.3 [klein] (issue 85) through the same backend and runner as every family, on a tiny
random model in its published layout (``modular_model_index.json`` naming each part by its
Hub repository, the FLUX.3 transformer, the FLUX.2 VAE, a Qwen3-VL of 32 layers and
``tokenizer/``): the folder is told by its modular pipeline class, every part loads from the
folder with the network forbidden, a masked edit hands the pipeline the crop and the mask's
bounding box as a layout box in the caption and keeps every pixel outside the effective mask,
an edit without a mask changes the whole picture with the references after it, the steps
report progress and previews and stop at a cancel, and the base release guides with its
negative prompt."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import torch
from diffusers.modular_pipelines.flux3.prompt_upsampler import split_caption
from diffusers.modular_pipelines.modular_pipeline import ModularPipeline
from PIL import Image

from inpainting.engine import Cancelled, get_backend, memory, run_inpaint
from inpainting.engine.backends import loading as backend_module
from inpainting.engine.backends import modular
from inpainting.engine.backends.qwen_vl import Qwen3PictureProcessor, processor_parts
from inpainting.engine.families import FAMILIES
from inpainting.engine.probe import Probe, probe, weight_parts
from inpainting.testing.tiny_flow import write_tiny_flux3_klein_model, write_tiny_flux3_upsampler
from inpainting.testing.tiny_model import tiny_config
from tests.engine.requests import inpaint_request, kept_exactly
from tests.images import gradient
from tests.network import network_forbidden

ignore_weights = shutil.ignore_patterns("*.safetensors")


def backend_for(folder, **settings):
    return get_backend("diffusers", tiny_config(folder, working_size=128, **settings))


@pytest.fixture
def calls(monkeypatch):
    """The keyword arguments of each call of the modular pipeline itself."""
    seen = []
    real_call = ModularPipeline.__call__

    def spy(self, *args, **kwargs):
        seen.append(kwargs)
        return real_call(self, *args, **kwargs)

    monkeypatch.setattr(ModularPipeline, "__call__", spy)
    return seen


def test_the_folder_is_told_by_its_modular_pipeline_and_says_what_it_accepts(flux3_weights):
    assert (flux3_weights / "modular_model_index.json").is_file()
    assert not (flux3_weights / "model_index.json").exists()
    assert probe(flux3_weights) == Probe("flux3-klein", True, "diffusers")
    family = FAMILIES["flux3-klein"]
    assert family.edits and family.reference_images == 9 and family.licence
    accepts = family.accepts()
    assert accepts["num_inference_steps"] == {"default": 16, "maximum": 50}
    assert not accepts["guidance"] and not accepts["negative_prompt"]
    base = FAMILIES["flux3-klein-base"].accepts()
    assert base["guidance"] and base["negative_prompt"]
    assert base["num_inference_steps"]["default"] == 50


def test_a_masked_edit_places_the_words_in_the_masks_box_and_keeps_every_other_pixel(
    flux3_weights, calls, monkeypatch
):
    backend_module.unload_all()
    previews, steps = [], []
    with network_forbidden(monkeypatch) as attempts:
        req = inpaint_request(prompt="a red door")
        result = run_inpaint(
            req,
            backend_for(flux3_weights, preview_every=1),
            progress=lambda event: (steps.append(event.step), previews.append(event.preview)),
        )
    assert attempts == []
    metadata = result.metadata
    assert (metadata["family"], metadata["edit"], metadata["mask_as"]) == (
        "flux3-klein",
        "masked",
        "box",
    )
    assert metadata["edit_pipeline"] == "ModularPipe"
    assert metadata["prompt_upsampler"] is False and "caption" not in metadata
    (call,) = calls
    (crop,) = call["image"]
    assert (call["width"], call["height"]) == crop.size
    assert call["num_inference_steps"] == 4 and "boxes" not in call  # no upsampler here
    words, (row,) = split_caption(call["prompt"])
    assert words.startswith("a red door <region_1>.")
    assert row["id"] == "region_1" and row["from"] == "target" and row["desc"] == "a red door"
    y0, x0, y1, x1 = row["tgt_bbox"]  # the hole's box in the crop, on the 0-1000 canvas
    assert 0 < x0 < x1 < 1000 and 0 < y0 < y1 < 1000
    assert kept_exactly(result, req)
    inside = np.asarray(req.mask) == 0  # black inpaints here
    out, original = np.asarray(result.images[0]), np.asarray(req.image.convert("RGB"))
    assert (out != original).any(axis=2)[inside].mean() > 0.5
    assert steps == [1, 2, 3, 4]
    frames = [Image.open(io.BytesIO(p)) for p in previews if p]
    assert frames and frames[0].size == (crop.width // 8, crop.height // 8)


def test_its_prompt_upsampler_reads_the_words_and_the_box_and_the_plan_counts_it(
    flux3_weights, tmp_path, calls, monkeypatch
):
    """Copied in as ``prompt_upsampler/``, the upsampler runs first: it gets the words, the
    picture and the mask's box (0-1), and the caption it writes (here a tiny random model's
    few tokens, the locked box table after them) is what the answer says the model read. The
    library's measure and the loaded pipeline's count it with the text encoders."""
    folder = write_tiny_flux3_upsampler(shutil.copytree(flux3_weights, tmp_path / "flux3"))
    family = FAMILIES["flux3-klein"]
    without, with_it = weight_parts(flux3_weights, family), weight_parts(folder, family)
    assert with_it.text_encoders > without.text_encoders
    assert (with_it.denoiser, with_it.other) == (without.denoiser, without.other)
    monkeypatch.setattr(modular, "UPSAMPLER_TOKENS", 6)
    backend_module.unload_all()
    req = inpaint_request(prompt="a red door")
    backend = backend_for(folder)
    result = run_inpaint(req, backend)
    (call,) = calls
    assert call["prompt"] == "a red door" and call["max_new_tokens"] == 6
    (box,) = call["boxes"]
    assert (box["id"], box["from"], box["desc"]) == ("region_1", "target", "a red door")
    assert all(0 < value < 1 for value in box["tgt_bbox"])
    _, (row,) = split_caption(result.metadata["caption"])  # diffusers' own reading
    assert row["id"] == "region_1" and row["tgt_bbox"][0] > 0
    assert result.metadata["prompt_upsampler"] is True
    # Loaded in float32 here (4 bytes a weight, the measure's 2), with the rope's buffers.
    loaded = backend_module.parts_of(backend.load(), family)
    assert 2 * with_it.text_encoders <= loaded.text_encoders < 2.01 * with_it.text_encoders
    assert kept_exactly(result, req)


def test_without_a_mask_the_whole_picture_with_the_references_after_it(flux3_weights, calls):
    """The picture at the working size (128 px here), sides in multiples of 16."""
    image = gradient(160, 128)
    references = (gradient(96, 80), gradient(64, 64))
    result = run_inpaint(
        inpaint_request(image=image, mask=None, reference_images=references),
        backend_for(flux3_weights),
    )
    assert result.images[0].size == (160, 128)
    assert result.metadata["edit"] == "whole" and result.metadata["reference_images"] == 2
    (call,) = calls
    assert [picture.size for picture in call["image"]] == [(128, 96), (96, 80), (64, 64)]
    assert (call["width"], call["height"]) == (128, 96)
    assert call["prompt"] == "a red rose"  # the words as given: no box
    out, original = np.asarray(result.images[0]), np.asarray(image.convert("RGB"))
    assert (out != original).any(axis=2).mean() > 0.9


def test_a_cancel_stops_the_steps(flux3_weights):
    seen = []

    def cancelled():
        return len(seen) >= 2

    with pytest.raises(Cancelled):
        run_inpaint(
            inpaint_request(),
            backend_for(flux3_weights),
            progress=lambda event: seen.append(event.step),
            is_cancelled=cancelled,
        )
    assert seen == [1, 2]


def test_the_base_release_guides_with_its_negative_prompt(tmp_path, calls):
    folder = write_tiny_flux3_klein_model(tmp_path / "base", distilled=False)
    assert probe(folder).family == "flux3-klein-base"
    req = inpaint_request(prompt="a cat", negative_prompt="blur", guidance_scale=2.5)
    backend = backend_for(folder)
    result = run_inpaint(req, backend)
    (call,) = calls
    assert call["negative_prompt"] == "blur"
    assert backend.load().guider.guidance_scale == 2.5
    assert kept_exactly(result, req)


@pytest.mark.parametrize(
    "plan", [memory.TEXT_ENCODER_OFFLOAD, memory.MODEL_OFFLOAD, memory.SEQUENTIAL]
)
def test_the_offload_plans_place_its_parts_and_it_paints_the_same(flux3_weights, plan):
    """Each offload plan's placement (``loading._place``: what a CUDA worker does under it)
    applied to the modular pipeline, here with the CPU as the device: the same picture as the
    pipeline as loaded. That the plans fit a GPU's memory is not measured here."""
    family = FAMILIES["flux3-klein"]
    picture, hole = gradient(64, 48), Image.new("L", (64, 48), 0)
    hole.paste(255, (16, 16, 48, 40))

    def paint(pipe):
        return np.asarray(
            pipe(
                prompt="a red rose",
                image=[picture],
                height=48,
                width=64,
                num_inference_steps=2,
                generator=torch.Generator().manual_seed(1),
                mask_box=hole,
            ).images[0]
        )

    expected = paint(modular.load(flux3_weights, family, torch.float32))
    placed = backend_module._place(
        modular.load(flux3_weights, family, torch.float32), family, "cpu", plan
    )
    assert np.array_equal(paint(placed), expected)


def test_an_index_that_names_only_autoprocessor_gets_qwen3_vls_from_the_folder(
    flux3_weights, tmp_path
):
    """Without torchvision the processor is built here: Qwen3-VL's (16 px patches) where the
    index names it, or, where it names only ``AutoProcessor``, where the folder's picture
    preprocessing does."""
    folder = shutil.copytree(flux3_weights, tmp_path / "flux3", ignore=ignore_weights)
    index_path = folder / "modular_model_index.json"
    index = json.loads(index_path.read_text())
    index["tokenizer"][1] = "AutoProcessor"
    index_path.write_text(json.dumps(index))
    (processor,) = processor_parts(folder, part="tokenizer").values()
    assert isinstance(processor, Qwen3PictureProcessor)
