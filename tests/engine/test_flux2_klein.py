"""FLUX.2 [klein] (issue 36) through the same backend and runner as inpainting, on tiny random
pipelines built offline (the FLUX.2 transformer over 128 patchified channels, the 32-channel
FLUX.2 VAE, a 28-layer Qwen3 text encoder): the distilled and base releases are told apart by
their folders, a FLUX.2 single file is refused with the reason, the pipeline loads with the
network forbidden; a masked edit keeps every pixel outside the effective mask; a mask-less
edit changes the whole picture at its size; reference pictures reach the pipeline in order
(a small one enlarged to the 64 px FLUX.2 reads); a guidance the distilled model does not use
is named in the warnings."""

from __future__ import annotations

from dataclasses import replace

import diffusers
import numpy as np
import pytest
import torch
import transformers
from safetensors.torch import save_file

from inpainting.engine import EraserUse, effective_mask, get_backend, run_inpaint
from inpainting.engine.backends import loading as backend_module
from inpainting.engine.families import FAMILIES
from inpainting.engine.probe import Probe, Unsupported, probe, probe_eraser
from inpainting.params import GenerationParams
from inpainting.testing.tiny_flow import write_tiny_flux2_klein_model
from inpainting.testing.tiny_lora import write_tiny_eraser
from inpainting.testing.tiny_model import tiny_config
from tests.engine.requests import inpaint_request, kept_exactly
from tests.images import box_mask, gradient
from tests.network import network_forbidden


@pytest.fixture(scope="module")
def klein(klein_weights):
    """The tiny [klein] folder the test process writes once (``conftest.klein_weights``)."""
    return klein_weights


def backend_for(folder):
    # FLUX.2 reads pictures of at least 64 px a side: the tests work at 128.
    return get_backend("diffusers", tiny_config(folder, working_size=128))


def edit_request(**overrides):
    return inpaint_request(**{"prompt": "make the sky red", "guidance_scale": 1.0, **overrides})


def test_the_releases_are_told_apart_and_a_single_file_is_refused(klein, tmp_path):
    assert probe(klein) == Probe("flux2-klein", True, "diffusers")
    base = write_tiny_flux2_klein_model(tmp_path / "FLUX.2-klein-base-4B", distilled=False)
    assert probe(base) == Probe("flux2-klein-base", True, "diffusers")
    assert FAMILIES["flux2-klein"].capabilities.default_steps == 4
    assert FAMILIES["flux2-klein-base"].capabilities.default_steps == 50
    single = tmp_path / "flux-2-klein-4b.safetensors"
    save_file({"single_stream_modulation.lin.weight": torch.zeros(2, 2)}, str(single))
    with pytest.raises(Unsupported, match="a FLUX.2 transformer in one file"):
        probe(single)


def test_it_loads_with_the_network_forbidden_and_edits_inside_the_mask_only(klein, monkeypatch):
    backend_module.unload_all()
    with network_forbidden(monkeypatch) as attempts:
        backend = backend_for(klein)
        req = edit_request()
        result = run_inpaint(req, backend)
    assert attempts == []
    assert result.metadata["family"] == "flux2-klein"
    assert result.metadata["edit_pipeline"] == "Flux2KleinInpaintPipeline"
    assert kept_exactly(result, req)
    inside = np.asarray(req.mask) == 0  # black inpaints here
    out, original = np.asarray(result.images[0]), np.asarray(req.image.convert("RGB"))
    assert (out != original).any(axis=2)[inside].mean() > 0.5


def test_without_a_mask_the_whole_picture_with_the_references_in_order(klein, monkeypatch):
    seen = []
    real_call = diffusers.Flux2KleinPipeline.__call__

    def spy(self, *args, **kwargs):
        seen.append([picture.size for picture in kwargs["image"]])
        return real_call(self, *args, **kwargs)

    monkeypatch.setattr(diffusers.Flux2KleinPipeline, "__call__", spy)
    image = gradient(200, 140)
    references = (gradient(90, 80), gradient(40, 30))
    result = run_inpaint(
        edit_request(image=image, mask=None, reference_images=references), backend_for(klein)
    )
    assert result.images[0].size == (200, 140)
    assert result.metadata["edit"] == "whole" and result.metadata["reference_images"] == 2
    # The working picture (128 x 96), then the references; the 40 x 30 one enlarged to 64 px.
    assert seen == [[(128, 96), (90, 80), (85, 64)]]
    out, original = np.asarray(result.images[0]), np.asarray(image.convert("RGB"))
    assert (out != original).any(axis=2).mean() > 0.9


def test_a_guidance_the_distilled_release_does_not_use_is_named():
    params, warnings = GenerationParams(prompt="x", guidance_scale=4.0).for_family(
        FAMILIES["flux2-klein"], "klein"
    )
    assert params.guidance_scale == 1.0
    assert [w["field"] for w in warnings] == ["guidance_scale"]
    assert "distilled into its steps" in warnings[0]["message"]
    params, warnings = GenerationParams(prompt="x", guidance_scale=4.0).for_family(
        FAMILIES["flux2-klein-base"], "klein-base"
    )
    assert params.guidance_scale == 4.0 and warnings == []


@pytest.fixture(scope="module")
def eraser(klein, tmp_path_factory):
    """The tiny erase adapter for the tiny [klein], as slopshop/erase-v1 is laid out."""
    return write_tiny_eraser(klein, tmp_path_factory.mktemp("erasers") / "erase-v1")


def drawn_box():
    """The box an erase removes: black inpaints (DreamLayer's polarity)."""
    return box_mask(160, 120, (60, 40, 100, 80), inpaint_white=False)


def erase_request(folder, **overrides):
    """A 160 x 120 erase of a box (the mask grown by 6 px), with the adapter in ``folder``."""
    lora = folder / "erase_v1_diffusers.safetensors"
    embedding = folder / "prompt_embeds.safetensors"
    params = GenerationParams(seed=3, mode="erase", dilate_pixels=6, mask_blur=0)
    return replace(
        params.with_defaults().to_request(image=gradient(160, 120), mask=drawn_box()),
        eraser=EraserUse(str(lora), str(embedding) if embedding.is_file() else None),
        **overrides,
    )


def test_an_erase_adapter_reads_the_photo_and_the_mask_and_no_text_encoder_runs(
    klein, eraser, monkeypatch
):
    """The adapter's LoRA on, the edit pipeline gets the crop and its grown hole (white:
    remove) as its two references and the adapter's embedding for words: the text encoder is
    never called. The area changed is the grown mask, every other pixel the input's; the
    LoRA is off again after the job."""
    assert probe_eraser(eraser) == (
        "flux2-klein",
        {"lora": "erase_v1_diffusers.safetensors", "embedding": "prompt_embeds.safetensors",
         "instruction": "", "text_width": 48},
    )  # fmt: skip
    seen, encoded = [], []
    real_call = diffusers.Flux2KleinPipeline.__call__
    real_forward = transformers.Qwen3ForCausalLM.forward

    def spy(self, *args, **kwargs):
        seen.append({**kwargs, "adapters": self.get_list_adapters()})
        return real_call(self, *args, **kwargs)

    def counted(self, *args, **kwargs):
        encoded.append(1)
        return real_forward(self, *args, **kwargs)

    monkeypatch.setattr(diffusers.Flux2KleinPipeline, "__call__", spy)
    monkeypatch.setattr(transformers.Qwen3ForCausalLM, "forward", counted)
    backend = backend_for(klein)
    req = erase_request(eraser)
    result = run_inpaint(req, backend)
    assert encoded == [] and len(seen) == 1
    call = seen[0]
    assert "prompt" not in call and tuple(call["prompt_embeds"].shape) == (1, 8, 48)
    assert call["num_inference_steps"] == 4 and call["adapters"] == {"transformer": ["lora0"]}
    photo, hole = call["image"]
    assert photo.size == hole.size and hole.mode == "RGB"
    white = np.asarray(hole)[..., 0] == 255
    assert 0.05 < white.mean() < 0.6 and set(np.unique(np.asarray(hole))) == {0, 255}
    assert result.metadata["edit"] == "erase" and result.metadata["reference_images"] == 2
    out, original = np.asarray(result.images[0]), np.asarray(req.image.convert("RGB"))
    grown = effective_mask(req.mask, req.image.size, req.mask_options) > 0
    assert (out[~grown] == original[~grown]).all()
    drawn = np.asarray(req.mask) == 0  # black: the box drawn
    assert (out != original).any(axis=2)[grown & ~drawn].mean() > 0.3  # the dilation's ring
    # The LoRA is off again: an inpaint afterwards runs on the model's own weights.
    assert backend.load().get_list_adapters() == {}


def test_an_erase_adapter_without_an_embedding_is_told_by_its_instruction(klein, tmp_path):
    folder = write_tiny_eraser(klein, tmp_path / "erase-words", embedding=False)
    family, details = probe_eraser(folder)
    assert family == "flux2-klein" and details["instruction"].startswith("Remove the object")
    req = erase_request(folder)
    req = replace(req, eraser=replace(req.eraser, instruction=details["instruction"]))
    result = run_inpaint(req, backend_for(klein))
    assert result.metadata["eraser_prompt"] == "instruction"
    # Its budget: an instruction of at most 4 KB is read at every job; a longer one is refused.
    (folder / "instruction.txt").write_text("Remove it. " * 400)
    with pytest.raises(Unsupported, match="of at most 4096 bytes: the adapter's own prompt"):
        probe_eraser(folder)
    (folder / "instruction.txt").unlink()
    with pytest.raises(Unsupported, match="the adapter's own prompt is needed"):
        probe_eraser(folder)
