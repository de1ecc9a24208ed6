"""Stable Diffusion 3 / 3.5 (issue 21, a second newer family) through the same backend and
runner, on a tiny random SD3 pipeline the test builds (three text encoders, MMDiT, 16-channel
VAE): family detection, exact preservation, previews, a negative prompt that counts, cancel
within a step, batching, the network forbidden while loading."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from inpainting.engine import (
    Cancelled,
    InpaintRequest,
    MaskOptions,
    effective_mask,
    get_backend,
    run_inpaint,
    run_inpaint_batch,
)
from inpainting.engine.backends import loading as backend_module
from inpainting.engine.backends.loading import load_pipeline
from inpainting.engine.families import FAMILIES
from inpainting.engine.probe import Probe, probe
from inpainting.testing.tiny_flow import write_tiny_sd3_model
from inpainting.testing.tiny_model import tiny_config
from tests.engine.requests import inpaint_request
from tests.network import network_forbidden


@pytest.fixture(scope="module")
def sd3(tmp_path_factory):
    return write_tiny_sd3_model(tmp_path_factory.mktemp("sd3") / "tiny-sd3")


@pytest.fixture(scope="module")
def backend(sd3):
    return get_backend("diffusers", tiny_config(sd3, preview_every=2))


def request(**overrides) -> InpaintRequest:
    return inpaint_request(**{"guidance_scale": 4.5, **overrides})


def test_probe_pipeline_preservation_and_previews(sd3, backend):
    assert probe(sd3) == Probe("sd3", False, "diffusers")  # no SD3 inpainting variant exists
    assert type(load_pipeline(str(sd3), "cpu")).__name__ == "StableDiffusion3InpaintPipeline"
    assert backend.family is FAMILIES["sd3"] and backend.size_multiple == 16
    events = []
    req = request(samples=2)
    result = run_inpaint(req, backend, progress=events.append)
    out, original = np.asarray(result.images[0]), np.asarray(req.image)
    mask = effective_mask(req.mask, req.image.size, MaskOptions())
    assert (out[mask == 0] == original[mask == 0]).all()  # exact preservation
    assert np.abs(out[mask == 255].astype(int) - original[mask == 255]).mean() > 5
    assert [e.step for e in events if e.preview] == [2]
    preview = Image.open(io.BytesIO(events[1].preview))
    assert preview.size == (64 // 8, 48 // 8)
    assert result.seeds == [7, 8] and result.metadata["family"] == "sd3"


def test_the_negative_prompt_counts_and_cancel_and_batching_work(backend):
    plain = np.asarray(run_inpaint(request(), backend).images[0])
    negative = np.asarray(run_inpaint(request(negative_prompt="a blue sky"), backend).images[0])
    assert (plain != negative).any()  # SD3 uses the negative prompt (classifier-free guidance)
    events = []
    with pytest.raises(Cancelled):
        run_inpaint(
            request(num_inference_steps=10),
            backend,
            progress=events.append,
            is_cancelled=lambda: len(events) >= 2,
        )
    assert len(events) == 2
    together = run_inpaint_batch(
        [request(), request(seed=9)],
        backend,
        progresses=[lambda event: None] * 2,
        cancel_checks=[lambda: False] * 2,
    )
    assert [r.metadata["batched_jobs"] for r in together] == [2, 2]
    assert np.abs(np.asarray(together[0].images[0], int) - plain).max() <= 1


def test_sd3_loads_with_the_network_forbidden(sd3, monkeypatch):
    backend_module.unload_all()
    with network_forbidden(monkeypatch) as attempts:
        result = run_inpaint(request(), get_backend("diffusers", tiny_config(sd3)))
        assert result.metadata["model_load_seconds"] > 0
    assert attempts == []
