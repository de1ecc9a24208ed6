"""Z-Image (issue 21, a third newer family) through the same backend and runner, on a tiny
random Z-Image pipeline the test builds (Qwen3 text encoder with a chat template, single-stream
transformer, 16-channel VAE): detection from a folder and from the transformer's keys, exact
preservation, previews, guidance 0 (Turbo: no classifier-free guidance) against guidance on
with a negative prompt, cancel within a step, batching, the network forbidden while loading."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import save_file

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
from inpainting.engine.probe import Probe, probe, read_header
from inpainting.testing.tiny_flow import write_tiny_zimage_model
from inpainting.testing.tiny_model import tiny_config
from tests.engine.requests import inpaint_request
from tests.network import network_forbidden


@pytest.fixture(scope="module")
def zimage(tmp_path_factory):
    return write_tiny_zimage_model(tmp_path_factory.mktemp("zimage") / "tiny-z-image")


@pytest.fixture(scope="module")
def backend(zimage):
    return get_backend("diffusers", tiny_config(zimage, preview_every=2))


def request(**overrides) -> InpaintRequest:
    return inpaint_request(**{"guidance_scale": 0.0, **overrides})


def test_detection_from_the_folder_and_from_the_transformers_keys(zimage, tmp_path):
    assert probe(zimage) == Probe("zimage", False, "diffusers")
    weights = next((zimage / "transformer").glob("*.safetensors"))
    table = read_header(weights)
    single = tmp_path / "z_image_turbo.safetensors"  # the keys, as ComfyUI packages them
    save_file({f"model.diffusion_model.{k}": np.zeros([1], np.float16) for k in table}, str(single))
    assert probe(single) == Probe("zimage", False, "single-file")


def test_preservation_previews_and_guidance(zimage, backend):
    assert type(load_pipeline(str(zimage), "cpu")).__name__ == "ZImageInpaintPipeline"
    assert backend.family is FAMILIES["zimage"] and backend.size_multiple == 16
    events = []
    req = request()
    result = run_inpaint(req, backend, progress=events.append)
    out, original = np.asarray(result.images[0]), np.asarray(req.image)
    mask = effective_mask(req.mask, req.image.size, MaskOptions())
    assert (out[mask == 0] == original[mask == 0]).all()  # exact preservation
    assert np.abs(out[mask == 255].astype(int) - original[mask == 255]).mean() > 5
    assert [e.step for e in events if e.preview] == [2]
    assert Image.open(io.BytesIO(events[1].preview)).size == (64 // 8, 48 // 8)
    # Guidance 0 (Turbo) leaves the negative prompt out; guidance on takes it in.
    no_cfg = np.asarray(run_inpaint(request(negative_prompt="a blue sky"), backend).images[0])
    assert np.array_equal(no_cfg, out)
    cfg = run_inpaint(request(guidance_scale=4.0), backend).images[0]
    cfg_negative = run_inpaint(request(guidance_scale=4.0, negative_prompt="a blue sky"), backend)
    assert (np.asarray(cfg) != np.asarray(cfg_negative.images[0])).any()


def test_cancel_within_a_step_and_batching(backend):
    events = []
    with pytest.raises(Cancelled):
        run_inpaint(
            request(num_inference_steps=10),
            backend,
            progress=events.append,
            is_cancelled=lambda: len(events) >= 2,
        )
    assert len(events) == 2
    alone = np.asarray(run_inpaint(request(), backend).images[0], int)
    together = run_inpaint_batch(
        [request(), request(seed=9)],
        backend,
        progresses=[lambda event: None] * 2,
        cancel_checks=[lambda: False] * 2,
    )
    assert [r.metadata["batched_jobs"] for r in together] == [2, 2]
    assert np.abs(np.asarray(together[0].images[0], int) - alone).max() <= 1


def test_z_image_loads_with_the_network_forbidden(zimage, monkeypatch):
    backend_module.unload_all()
    with network_forbidden(monkeypatch) as attempts:
        result = run_inpaint(request(), get_backend("diffusers", tiny_config(zimage)))
        assert result.metadata["model_load_seconds"] > 0
    assert attempts == []
