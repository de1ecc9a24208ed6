"""FLUX.1 Fill (issue 21) through the same backend and runner as SD, on a tiny random FLUX.1
Fill pipeline the test builds (its transformer takes 384 channels, as the real one does):
family detection, exact preservation, only-masked, outpainting, samples and seeds, previews
from packed latents, cancel within a step, batching, the network forbidden while loading."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from inpainting.engine import (
    Cancelled,
    EngineError,
    InpaintRequest,
    MaskOptions,
    Outpaint,
    effective_mask,
    get_backend,
    run_inpaint,
    run_inpaint_batch,
)
from inpainting.engine.backends import loading as backend_module
from inpainting.engine.backends.loading import load_pipeline
from inpainting.engine.families import FAMILIES
from inpainting.engine.previews import latents_to_jpeg, unpack
from inpainting.engine.probe import Probe, Unsupported, probe, read_header
from inpainting.testing.original_layout import write_flux_single_file
from inpainting.testing.tiny_flow import write_tiny_flux_fill_model
from inpainting.testing.tiny_model import tiny_config
from tests.engine.requests import inpaint_request, kept_exactly
from tests.images import box_mask, gradient
from tests.network import network_forbidden


@pytest.fixture(scope="module")
def flux(tmp_path_factory):
    return write_tiny_flux_fill_model(tmp_path_factory.mktemp("flux") / "tiny-flux-fill")


@pytest.fixture(scope="module")
def backend(flux):
    return get_backend("diffusers", tiny_config(flux, preview_every=2))


def request(**overrides) -> InpaintRequest:
    return inpaint_request(**{"guidance_scale": 30.0, **overrides})


def test_the_probe_the_pipeline_and_the_working_size_are_flux_fill(flux, backend):
    assert probe(flux) == Probe("flux", True, "diffusers")
    pipe = load_pipeline(str(flux), "cpu")
    assert type(pipe).__name__ == "FluxFillPipeline"
    assert pipe.transformer.config.in_channels == 384
    assert backend.family is FAMILIES["flux"] and backend.size_multiple == 16
    result = run_inpaint(request(), backend)
    assert [side % 16 for side in result.metadata["working_size"]] == [0, 0]  # 64 x 48
    assert result.metadata["family"] == "flux"
    assert result.metadata["scheduler_class"] == "FlowMatchEulerDiscreteScheduler"


def test_a_base_flux_transformer_is_refused_with_the_reason(flux, tmp_path):
    base = tmp_path / "flux-base"
    base.mkdir()
    for part in flux.iterdir():
        (base / part.name).symlink_to(part)
    (base / "transformer").unlink()
    (base / "transformer").mkdir()
    config = json.loads((flux / "transformer" / "config.json").read_text())
    (base / "transformer" / "config.json").write_text(json.dumps({**config, "in_channels": 64}))
    with pytest.raises(Unsupported, match="transformer with 64 input channels"):
        probe(base)


def test_preservation_progress_previews_samples_and_seeds(backend):
    events = []
    req = request(samples=2)
    result = run_inpaint(req, backend, progress=events.append)
    assert kept_exactly(result, req)
    mask = effective_mask(req.mask, req.image.size, MaskOptions())
    painted = np.asarray(result.images[0], int)[mask == 255] - np.asarray(req.image)[mask == 255]
    assert np.abs(painted).mean() > 5
    assert [e.step for e in events] == [1, 2, 3, 4]
    assert [e.step for e in events if e.preview] == [2]  # every 2 steps, not the last
    preview = Image.open(io.BytesIO(events[1].preview))
    assert preview.format == "JPEG" and preview.size == (64 // 8, 48 // 8)  # the latent grid
    assert result.seeds == [7, 8]
    a, b = (np.asarray(image) for image in result.images)
    assert (a != b).any()
    again = run_inpaint(request(seed=8), backend)
    assert np.abs(np.asarray(again.images[0], int) - b.astype(int)).max() <= 1


def test_packed_latents_unpack_as_the_pipeline_unpacks_them(flux):
    """The preview reads FLUX's 2x2-patch sequence the way diffusers' own unpacking does."""
    pipe = load_pipeline(str(flux), "cpu")
    grid = torch.randn(1, 16, 6, 8)  # a 48 x 64 picture's latents
    packed = pipe._pack_latents(grid, 1, 16, 6, 8)
    assert np.array_equal(unpack(packed[0].numpy(), 6, 8), grid[0].numpy())
    preview = Image.open(
        io.BytesIO(latents_to_jpeg(packed[0].numpy(), FAMILIES["flux"].preview, (6, 8)))
    )
    assert preview.size == (8, 6)


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
    assert (np.asarray(out.images[0])[8 + 8 : 88 - 8, 8 : 120 - 8] == original[8:-8, 8:-8]).all()


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
    alone = [run_inpaint(request(seed=s), backend) for s in (1, 2)]
    together = run_inpaint_batch(
        [request(seed=1), request(seed=2, prompt="a cat")],
        backend,
        progresses=[lambda event: None] * 2,
        cancel_checks=[lambda: False] * 2,
    )
    assert [r.metadata["batched_jobs"] for r in together] == [2, 2]
    difference = np.abs(np.asarray(alone[0].images[0], int) - np.asarray(together[0].images[0]))
    assert difference.max() <= 1  # the first job's picture, batched or alone
    assert (np.asarray(alone[1].images[0]) != np.asarray(together[1].images[0])).any()  # a cat


def test_a_negative_prompt_and_a_scheduler_change_nothing(backend):
    """FLUX.1 Fill has no negative prompt and its own scheduler only: the engine runs without
    them (the service names them in the job's warnings)."""
    plain = np.asarray(run_inpaint(request(), backend).images[0])
    ignored = run_inpaint(request(negative_prompt="blurry", scheduler="Euler a"), backend)
    assert np.array_equal(np.asarray(ignored.images[0]), plain)
    assert ignored.metadata["scheduler"] == "FlowMatchEulerDiscreteScheduler"


def test_flux_loads_with_the_network_forbidden(flux, monkeypatch):
    backend_module.unload_all()
    with network_forbidden(monkeypatch) as attempts:
        result = run_inpaint(request(), get_backend("diffusers", tiny_config(flux)))
        assert result.metadata["model_load_seconds"] > 0  # really loaded here
    assert attempts == []


@pytest.mark.heavy
def test_a_single_file_in_the_publishers_layout_loads_offline_and_paints_its_folders_picture(
    tmp_path, monkeypatch, flux_width_fill
):
    """FLUX.1 Fill as Black Forest Labs publish it: one ``.safetensors`` of the transformer
    alone in their key layout (fused QKV, ``img_in`` of 384 channels), at FLUX.1's width (one
    block of each kind). With the other parts in MODEL_CONFIGS_DIR's ``flux-inpainting/``
    (the diffusers folder without its transformer) it loads with the network forbidden and
    paints the picture the whole folder paints; without them it says what to copy in."""
    folder = flux_width_fill
    one_step = request(num_inference_steps=1)  # a step at this width is seconds on a CPU
    backend_module.unload_all()
    expected = np.asarray(
        run_inpaint(one_step, get_backend("diffusers", tiny_config(folder))).images[0]
    )
    pipe = load_pipeline(str(folder), "cpu")
    single = write_flux_single_file(pipe.transformer, tmp_path / "flux1-fill-dev.safetensors")
    assert "double_blocks.0.img_attn.qkv.weight" in read_header(single)
    assert probe(single) == Probe("flux", True, "single-file")
    configs = tmp_path / "configs"
    shutil.copytree(folder, configs / "flux-inpainting")
    for weights in (configs / "flux-inpainting" / "transformer").glob("*.safetensors"):
        weights.unlink()  # the other parts keep theirs
    assert not list((configs / "flux-inpainting" / "transformer").glob("*.safetensors"))

    backend_module.unload_all()
    with pytest.raises(EngineError, match="flux-inpainting/ in MODEL_CONFIGS_DIR: the FLUX.1"):
        run_inpaint(
            one_step, get_backend("diffusers", tiny_config(single, model_configs=str(tmp_path)))
        )
    with network_forbidden(monkeypatch) as attempts:
        config = tiny_config(single, model_configs=str(configs))
        result = run_inpaint(one_step, get_backend("diffusers", config))
    assert attempts == []
    assert result.metadata["model_load_seconds"] > 0 and result.metadata["family"] == "flux"
    assert np.abs(np.asarray(result.images[0], int) - expected).max() <= 1
    backend_module.unload_all()
