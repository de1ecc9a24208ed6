"""Qwen-Image-2.1 (issue 85) through the same backend and runner as every family, on a tiny
random pipeline in its published layout (the block-causal QwenImage 2.1 transformer, its
RGBA VAE of 64 channels and 16 px per latent, a Qwen3-VL with its vision tower and
``processor/`` with its chat template): the folder is told by its pipeline class, it loads
with the network forbidden, a masked edit hands the mask to the pipeline as a picture after
the crop and keeps every pixel outside the effective mask, an edit without a mask changes the
whole picture with the reference pictures after it, and the live previews read its latents
(one token per 16 px latent)."""

from __future__ import annotations

import io

import diffusers
import numpy as np
import pytest
from PIL import Image

from inpainting.engine import MaskOptions, effective_mask, get_backend, run_inpaint
from inpainting.engine.backends import loading as backend_module
from inpainting.engine.families import FAMILIES
from inpainting.engine.probe import Probe, probe
from inpainting.testing.tiny_model import tiny_config
from tests.engine.requests import inpaint_request, kept_exactly
from tests.images import gradient
from tests.network import network_forbidden


def backend_for(folder, **settings):
    return get_backend("diffusers", tiny_config(folder, working_size=128, **settings))


@pytest.fixture
def calls(monkeypatch):
    """The keyword arguments of each Qwen-Image-2.1 pipeline call."""
    seen = []
    real_call = diffusers.QwenImage21Pipeline.__call__

    def spy(self, *args, **kwargs):
        seen.append(kwargs)
        return real_call(self, *args, **kwargs)

    monkeypatch.setattr(diffusers.QwenImage21Pipeline, "__call__", spy)
    return seen


def test_the_folder_is_told_by_its_pipeline_and_says_what_it_accepts(qwen21_weights):
    assert probe(qwen21_weights) == Probe("qwen-image-21", True, "diffusers")
    family = FAMILIES["qwen-image-21"]
    assert family.edits and family.reference_images == 8
    assert family.licence == "qwen-research-license"
    accepts = family.accepts()
    assert accepts["num_inference_steps"] == {"default": 40, "maximum": 100}
    assert accepts["guidance_scale"]["default"] == 1.0 and accepts["negative_prompt"]
    assert (
        accepts["transparent_background"]
        and not FAMILIES["fibo2"].accepts()["transparent_background"]
    )


def test_a_masked_edit_reads_the_mask_as_a_picture_and_keeps_every_other_pixel(
    qwen21_weights, calls, monkeypatch
):
    backend_module.unload_all()
    with network_forbidden(monkeypatch) as attempts:
        req = inpaint_request(prompt="a red door", guidance_scale=3.0, negative_prompt="blur")
        result = run_inpaint(req, backend_for(qwen21_weights))
    assert attempts == []
    metadata = result.metadata
    assert (metadata["family"], metadata["edit"], metadata["mask_as"]) == (
        "qwen-image-21",
        "masked",
        "picture",
    )
    (call,) = calls
    crop, hole = call["image"]
    assert crop.size == hole.size and hole.mode == "RGB"
    assert set(np.unique(np.asarray(hole))) == {0, 255}  # white: where it may change
    assert "mask_image" not in call and "strength" not in call
    assert call["true_cfg_scale"] == 3.0 and call["negative_prompt"] == "blur"
    assert call["num_inference_steps"] == 4
    assert kept_exactly(result, req)
    inside = np.asarray(req.mask) == 0  # black inpaints here
    out, original = np.asarray(result.images[0]), np.asarray(req.image.convert("RGB"))
    assert result.images[0].mode == "RGB"  # the VAE's alpha is not kept: composited opaque
    assert (out != original).any(axis=2)[inside].mean() > 0.5


def test_without_a_mask_the_whole_picture_with_the_references_after_it(qwen21_weights, calls):
    """Its pictures at the working size's area (128 px here), sides in multiples of 32."""
    image = gradient(160, 120)
    references = (gradient(90, 80), gradient(70, 60))
    previews = []
    backend = backend_for(qwen21_weights, preview_every=1)
    result = run_inpaint(
        inpaint_request(image=image, mask=None, reference_images=references),
        backend,
        progress=lambda event: previews.append(event.preview),
    )
    assert result.images[0].size == (160, 120)
    assert result.metadata["edit"] == "whole" and result.metadata["reference_images"] == 2
    assert "mask_as" not in result.metadata
    (call,) = calls
    assert [picture.size for picture in call["image"]] == [(128, 96), (90, 80), (70, 60)]
    assert (call["width"], call["height"]) == (128, 96)
    out, original = np.asarray(result.images[0]), np.asarray(image.convert("RGB"))
    assert (out != original).any(axis=2).mean() > 0.9
    frames = [Image.open(io.BytesIO(p)) for p in previews if p]
    assert frames and frames[0].size == (128 // 16, 96 // 16)  # one pixel per latent


def test_a_transparent_result_keeps_the_alpha_it_paints_and_the_photo_opaque(qwen21_weights):
    """``transparent``: composited in RGBA; outside the mask the photo, opaque, byte for byte."""
    req = inpaint_request(transparent=True)
    result = run_inpaint(req, backend_for(qwen21_weights))
    out = np.asarray(result.images[0])
    assert result.images[0].mode == "RGBA" and result.metadata["background"] == "transparent"
    kept = effective_mask(req.mask, req.image.size, MaskOptions()) == 0
    assert np.array_equal(out[kept], np.asarray(req.image.convert("RGBA"))[kept])
    assert out[~kept][:, 3].min() < 255  # the tiny model's alpha inside: not all opaque
