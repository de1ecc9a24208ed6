"""The fast tier (issue 81, ``speed: "fast"``): on FLUX.1 Fill and Kontext the job runs with
diffusers' FirstBlockCache on its transformer, said in its metadata, and the next exact job
is the exact picture again; a family without a fast tier refuses it, naming the field."""

from __future__ import annotations

import numpy as np
import pytest

from inpainting.engine import InvalidInput, get_backend, run_inpaint
from inpainting.engine.backends.loading import denoiser_of, load_pipeline
from inpainting.engine.families import FAMILIES
from inpainting.params import GenerationParams
from inpainting.testing.tiny_flow import write_tiny_flux_fill_model
from inpainting.testing.tiny_model import tiny_config
from tests.engine.requests import inpaint_request, kept_exactly


@pytest.fixture(scope="module")
def flux(tmp_path_factory):
    return write_tiny_flux_fill_model(tmp_path_factory.mktemp("flux") / "tiny-flux-fill")


@pytest.mark.parametrize(
    ("model", "size", "guidance"), [("flux", 64, 30.0), ("kontext_weights", 64, 2.5)]
)
def test_a_fast_job_runs_with_the_step_cache_and_the_next_exact_job_is_exact(
    request, model, size, guidance
):
    folder = str(request.getfixturevalue(model))
    backend = get_backend("diffusers", tiny_config(folder, working_size=size))
    denoiser = denoiser_of(load_pipeline(folder, "cpu"))
    cached: list[bool] = []

    def progress(event) -> None:
        cached.append(denoiser.is_cache_enabled)

    job = dict(num_inference_steps=6, guidance_scale=guidance)
    exact = run_inpaint(inpaint_request(**job), backend)
    fast_request = inpaint_request(**job, speed="fast")
    fast = run_inpaint(fast_request, backend, progress=progress)
    again = run_inpaint(inpaint_request(**job), backend)

    assert cached and all(cached)  # every step ran under the cache
    assert not denoiser.is_cache_enabled  # and it is off after the job
    assert fast.metadata["speed"] == "fast"
    assert fast.metadata["step_cache"] == "first block, threshold 0.08"
    assert "speed" not in exact.metadata
    assert kept_exactly(fast, fast_request)
    assert np.array_equal(np.asarray(exact.images[0]), np.asarray(again.images[0]))


@pytest.mark.parametrize("family", ["sd15", "sdxl", "sd3", "zimage", "flux2-klein", "qwen-edit"])
def test_a_family_without_a_fast_tier_refuses_it_naming_the_field(family):
    with pytest.raises(InvalidInput) as refused:
        GenerationParams(prompt="x", speed="fast").for_family(FAMILIES[family], "mine")
    assert refused.value.field == "speed"
    label = FAMILIES[family].label
    assert f"The model 'mine' ({label}) has no fast tier here" in str(refused.value)
    assert "FLUX.1 Fill" in str(refused.value)  # where there is one
