"""Bria FIBO 2.0 (issue 85) through the same backend and runner as every family, on a tiny
random pipeline in its published layout (the FIBO 2.0 transformer with its perceiver, the
FLUX.2 VAE, a 36-layer Qwen3-VL with its vision tower and ``processor/``): the folder is told
by its pipeline class, it loads with the network forbidden (the picture processor built
without torchvision), a masked edit goes through the pipeline's own ``mask`` and keeps every
pixel outside the effective mask, and an edit without a mask changes the whole picture with
the reference pictures after it."""

from __future__ import annotations

import diffusers
import numpy as np
import pytest

from inpainting.engine import get_backend, run_inpaint
from inpainting.engine.backends import loading as backend_module
from inpainting.engine.families import FAMILIES
from inpainting.engine.probe import Probe, probe
from inpainting.testing.tiny_model import tiny_config
from tests.engine.requests import inpaint_request, kept_exactly
from tests.images import gradient
from tests.network import network_forbidden


@pytest.fixture(scope="module")
def fibo2(fibo2_weights):
    """The tiny FIBO 2.0 folder the test process writes once (``conftest.fibo2_weights``)."""
    return fibo2_weights


def backend_for(folder):
    return get_backend("diffusers", tiny_config(folder, working_size=128))


@pytest.fixture
def calls(monkeypatch):
    """The keyword arguments of each FIBO 2.0 pipeline call, and the area (its
    ``default_sample_size``, latents a side) it brings its other pictures to."""
    seen = []
    real_call = diffusers.BriaFibo2Pipeline.__call__

    def spy(self, *args, **kwargs):
        seen.append({**kwargs, "default_sample_size": self.default_sample_size})
        return real_call(self, *args, **kwargs)

    monkeypatch.setattr(diffusers.BriaFibo2Pipeline, "__call__", spy)
    return seen


def test_the_folder_is_told_by_its_pipeline_and_says_what_it_accepts(fibo2):
    assert probe(fibo2) == Probe("fibo2", True, "diffusers")
    family = FAMILIES["fibo2"]
    assert family.edits and family.reference_images == 4
    assert family.accepts()["num_inference_steps"] == {"default": 30, "maximum": 100}


def test_a_masked_edit_goes_through_its_own_mask_and_keeps_every_other_pixel(
    fibo2, calls, monkeypatch
):
    backend_module.unload_all()
    with network_forbidden(monkeypatch) as attempts:
        req = inpaint_request(prompt="a red door", guidance_scale=5.0)
        result = run_inpaint(req, backend_for(fibo2))
    assert attempts == []
    assert result.metadata["family"] == "fibo2" and result.metadata["edit"] == "masked"
    (call,) = calls
    hole = np.asarray(call["mask"])
    assert call["image"].size == call["mask"].size and "strength" not in call
    assert "mask_image" not in call and 0.05 < (hole == 255).mean() < 0.6
    assert call["num_inference_steps"] == 4 and call["guidance_scale"] == 5.0
    assert kept_exactly(result, req)
    inside = np.asarray(req.mask) == 0  # black inpaints here
    out, original = np.asarray(result.images[0]), np.asarray(req.image.convert("RGB"))
    assert (out != original).any(axis=2)[inside].mean() > 0.5


def test_without_a_mask_the_whole_picture_with_the_references_after_it(fibo2, calls):
    """The references are brought to the working size's area (128 px here: 16 latents a
    side), not the pipeline's 1 MP, and the pipeline's own area is back after the call."""
    image = gradient(160, 120)
    references = (gradient(90, 80), gradient(70, 60))
    backend = backend_for(fibo2)
    result = run_inpaint(
        inpaint_request(image=image, mask=None, reference_images=references), backend
    )
    assert calls[0]["default_sample_size"] == 16 and backend.load().default_sample_size == 128
    assert result.images[0].size == (160, 120)
    assert result.metadata["edit"] == "whole" and result.metadata["reference_images"] == 2
    assert [picture.size for picture in calls[0]["image"]] == [(128, 96), (90, 80), (70, 60)]
    assert "mask" not in calls[0]
    out, original = np.asarray(result.images[0]), np.asarray(image.convert("RGB"))
    assert (out != original).any(axis=2).mean() > 0.9
