"""FLUX.2 [klein] (issue 36) through the same backend and runner as inpainting, on tiny random
pipelines built offline (the FLUX.2 transformer over 128 patchified channels, the 32-channel
FLUX.2 VAE, a 28-layer Qwen3 text encoder): the distilled and base releases are told apart by
their folders, a FLUX.2 single file is refused with the reason, the pipeline loads with the
network forbidden; a masked edit keeps every pixel outside the effective mask; a mask-less
edit changes the whole picture at its size; reference pictures reach the pipeline in order
(a small one enlarged to the 64 px FLUX.2 reads); a guidance the distilled model does not use
is named in the warnings."""

from __future__ import annotations

import diffusers
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from inpainting.engine import get_backend, run_inpaint
from inpainting.engine.backends import loading as backend_module
from inpainting.engine.families import FAMILIES
from inpainting.engine.probe import Probe, Unsupported, probe
from inpainting.params import GenerationParams
from inpainting.testing.tiny_flow import write_tiny_flux2_klein_model
from inpainting.testing.tiny_model import tiny_config
from tests.engine.requests import inpaint_request, kept_exactly
from tests.images import gradient
from tests.network import network_forbidden


@pytest.fixture(scope="module")
def klein(tmp_path_factory):
    return write_tiny_flux2_klein_model(tmp_path_factory.mktemp("klein") / "FLUX.2-klein-4B")


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
