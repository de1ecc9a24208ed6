"""SDXL inpainting (issue 16) through the same backend and runner as SD 1.5, on a tiny random
SDXL pipeline the test builds: masks with exact preservation, only-masked, outpainting,
samples, previews, cancel, batching, schedulers; a base (4-channel) SDXL model inpaints too."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from inpainting.engine import (
    Cancelled,
    InpaintRequest,
    Outpaint,
    get_backend,
    run_inpaint,
    run_inpaint_batch,
)
from inpainting.engine.backends import loading as backend_module
from inpainting.engine.backends.loading import load_pipeline
from inpainting.engine.probe import Probe, probe
from inpainting.testing.tiny_model import tiny_config, write_tiny_sdxl_inpaint_model
from tests.engine.requests import inpaint_request, kept_exactly
from tests.images import box_mask, gradient
from tests.network import network_forbidden


@pytest.fixture(scope="module")
def sdxl(tmp_path_factory):
    return write_tiny_sdxl_inpaint_model(tmp_path_factory.mktemp("sdxl") / "tiny-sdxl")


@pytest.fixture(scope="module")
def backend(sdxl):
    config = tiny_config(sdxl, preview_every=2)
    return get_backend("diffusers", config)


def request(**overrides) -> InpaintRequest:
    return inpaint_request(**overrides)


def test_the_probe_and_the_pipeline_are_sdxl(sdxl, backend):
    assert probe(sdxl) == Probe("sdxl", True, "diffusers")
    pipe = load_pipeline(str(sdxl), "cpu")
    assert type(pipe).__name__ == "StableDiffusionXLInpaintPipeline"
    assert pipe.unet.config.in_channels == 9


def test_masks_preservation_progress_previews_samples_and_seeds(backend):
    events = []
    req = request(samples=2)
    result = run_inpaint(req, backend, progress=events.append)
    assert kept_exactly(result, req)
    assert [e.step for e in events] == [1, 2, 3, 4]
    assert [e.step for e in events if e.preview] == [2]  # every 2 steps, not the last
    assert result.seeds == [7, 8]
    a, b = (np.asarray(image) for image in result.images)
    assert (a != b).any()
    again = run_inpaint(request(seed=8), backend)
    assert np.abs(np.asarray(again.images[0], int) - b.astype(int)).max() <= 1


def test_only_masked_and_outpainting(backend):
    req = request(
        image=gradient(400, 300),
        mask=box_mask(400, 300, (180, 120, 220, 160), inpaint_white=False),
        inpaint_area="masked",
    )
    result = run_inpaint(req, backend)
    assert result.metadata["inpaint_area"] == "masked" and kept_exactly(result, req)
    out = run_inpaint(request(mask=None, outpaint=Outpaint(right=32, top=8)), backend)
    assert out.images[0].size == (152, 88)
    original = np.asarray(gradient(120, 80))
    # The original's pixels beyond the seam's feather are returned as they were.
    assert (np.asarray(out.images[0])[8 + 8 : 88 - 8, 8 : 120 - 8] == original[8:-8, 8:-8]).all()


def test_cancel_within_a_step_batching_and_a_scheduler_by_name(backend):
    events = []
    with pytest.raises(Cancelled):
        run_inpaint(
            request(num_inference_steps=10),
            backend,
            progress=events.append,
            is_cancelled=lambda: len(events) >= 2,
        )
    assert len(events) == 2
    alone = [run_inpaint(request(seed=s), backend) for s in (1, 2)]
    together = run_inpaint_batch(
        [request(seed=1), request(seed=2)],
        backend,
        progresses=[lambda event: None] * 2,
        cancel_checks=[lambda: False] * 2,
    )
    for one, batched in zip(alone, together, strict=True):
        assert batched.metadata["batched_jobs"] == 2
        difference = np.abs(np.asarray(one.images[0], int) - np.asarray(batched.images[0], int))
        assert difference.max() <= 1
    result = run_inpaint(request(scheduler="DPM++ 2M Karras"), backend)
    assert result.metadata["scheduler_class"] == "DPMSolverMultistepScheduler"


def test_a_base_sdxl_model_inpaints_too(tmp_path):
    folder = write_tiny_sdxl_inpaint_model(tmp_path / "base-xl", in_channels=4)
    assert probe(folder) == Probe("sdxl", False, "diffusers")
    config = tiny_config(folder)
    req = request()
    result = run_inpaint(req, get_backend("diffusers", config))
    assert kept_exactly(result, req)
    assert type(load_pipeline(str(folder), "cpu")).__name__ == "StableDiffusionXLInpaintPipeline"


def test_models_load_with_the_network_forbidden(sdxl, tiny_model, monkeypatch):
    """SD 1.5 and SDXL folders load and run with every non-loopback connection refused."""
    backend_module.unload_all()
    with network_forbidden(monkeypatch) as attempts:
        for folder in (tiny_model, sdxl):
            config = tiny_config(folder, model_cache_size=2)
            result = run_inpaint(request(), get_backend("diffusers", config))
            assert result.metadata["model_load_seconds"] > 0  # really loaded here
    assert attempts == []
    assert _loopback_guard_works(monkeypatch)


def _loopback_guard_works(monkeypatch) -> bool:
    """The guard itself: a connection to a public address is refused and recorded."""
    with network_forbidden(monkeypatch) as attempts:
        with pytest.raises(OSError, match="network forbidden"):
            socket.create_connection(("203.0.113.1", 443), timeout=1)
    return len(attempts) == 1 and "203.0.113.1" in attempts[0]
